/**
 * Imports point down (test/imports.test.ts runs this in `npm test`). From the top: main.ts and serve.ts; app.ts and
 * routers/; the cluster; the signaling service, the transports and the sessions; the engines, the peers, the store and security;
 * at the bottom protocol/ (the wire and the handler contract), with config, errors, log and paths beside it.
 * Type-only imports count: a lower layer that needs a higher one's types is a contract in the wrong place.
 */
const below = (...folders) => `^(${folders.join('|')})`;

module.exports = {
  forbidden: [
    { name: 'no-circular', severity: 'error', comment: 'a circle has no bottom', from: {}, to: { circular: true } },
    {
      name: 'protocol-is-the-bottom',
      severity: 'error',
      comment: 'the wire and the handler contract depend on nothing of the server',
      from: { path: '^src/protocol/' },
      to: { path: '^(src|routers)/', pathNot: below('src/protocol/', 'src/errors\\.ts', 'src/log\\.ts') },
    },
    {
      name: 'no-one-imports-the-entry',
      severity: 'error',
      comment: 'main.ts and serve.ts run the app: they import it, nothing in the server imports them',
      from: { path: '^(src|routers)/', pathNot: '^src/main\\.ts$' },
      to: { path: '^src/(main|serve)\\.ts$' },
    },
    {
      name: 'the-app-is-above-its-parts',
      severity: 'error',
      comment: 'app.ts assembles the parts; a part that imports it reaches up (index.ts, the package, re-exports it)',
      from: { path: '^src/', pathNot: '^src/(main|serve|app|index)\\.ts$' },
      to: { path: '^src/app\\.ts$' },
    },
    {
      name: 'the-cluster-is-above-a-server',
      severity: 'error',
      comment: 'one instance knows nothing of others: the signaling service and sessions offer hooks the cluster fills',
      from: { path: '^(src|routers)/', pathNot: below('src/cluster/', 'src/(main|app)\\.ts') },
      to: { path: '^src/cluster/' },
    },
    {
      name: 'engines-know-no-transport',
      severity: 'error',
      comment: 'an engine answers requests; how they came (sessions, sockets, ports, signaling, peers) is above it',
      from: { path: '^src/engine/' },
      to: { path: below('src/session/', 'src/transports/', 'src/signaling/', 'src/peer/', 'src/dispatch\\.ts', 'src/inbound\\.ts', 'routers/') },
    },
    {
      name: 'lower-layers-know-no-session',
      severity: 'error',
      comment: 'the store, security, the peers and config sit below sessions and transports',
      from: { path: below('src/store/', 'src/security/', 'src/peer/', 'src/config\\.ts') },
      to: { path: below('src/session/', 'src/transports/', 'src/signaling/', 'src/engine/', 'src/dispatch\\.ts', 'src/inbound\\.ts', 'routers/') },
    },
    {
      name: 'config-is-a-leaf',
      severity: 'error',
      comment: 'everything reads the config; it reads nothing of the server but where files go',
      from: { path: '^src/config\\.ts$' },
      to: { path: '^(src|routers)/', pathNot: '^src/paths\\.ts$' },
    },
    {
      name: 'the-client-is-its-own-library',
      severity: 'error',
      comment: 'the client runs in browsers: it shares the wire (protocol/) and the router type, nothing else',
      from: { path: '^src/client/' },
      to: {
        path: '^(src|routers)/',
        pathNot: below('src/client/', 'src/protocol/', 'src/errors\\.ts', 'routers/'),
      },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    // TypeScript 7 has no JavaScript API to parse with; swc reads the sources, type-only imports included.
    parser: 'swc',
    tsPreCompilationDeps: true,
  },
};
