/** `npm run docs`: writes docs/REQUEST_TYPES.md from the registry. */
import { writeFileSync } from 'node:fs';
import { renderRequestTypes } from '../src/docs.ts';

const target = new URL('../docs/REQUEST_TYPES.md', import.meta.url);
writeFileSync(target, renderRequestTypes());
console.log(`wrote ${target.pathname}`);
