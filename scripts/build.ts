/** `npm run build` (also run by `npm ci`, as `prepare`): the browser bundles and the Node programs, into dist/. */
import path from 'node:path';
import { repositoryRoot } from '../src/paths.ts';
import { buildBrowser } from './build-browser.ts';
import { buildNode } from './build-node.ts';

const [browser, node] = await Promise.all([buildBrowser(), buildNode()]);
const relative = (file: string) => path.relative(repositoryRoot(), path.resolve(repositoryRoot(), file));
console.log(`built ${[browser.clientBundle, browser.extensionDir, ...node].map(relative).join(', ')}`);
