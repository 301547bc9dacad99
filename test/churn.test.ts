import wrtc from '@roamhq/wrtc';
import { readdirSync } from 'node:fs';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { connect } from '../src/client/index.ts';
import { startServer, until } from './fixtures/server.ts';

/** Linux shows a process's threads under /proc/self/task; wrtc peers own native threads. */
const threads = () => readdirSync('/proc/self/task').length;

const churn = suite('connect/close churn');

churn('sessions, peers and their native threads return to the baseline after 40 connect/request/close cycles', async () => {
  const server = await startServer({ maxSessionsPerIp: 1000 });
  try {
    const baseline = threads();
    for (let i = 0; i < 40; i++) {
      const client = await connect({ url: server.url, RTCPeerConnection: wrtc.RTCPeerConnection });
      assert.is((await client.request('health')).status, 'ok');
      client.close();
    }
    await until(() => server.app.sessions.size === 0, 'every session to close');
    // Closed peers hold their threads until V8 collects them; the server asks for that collection itself.
    await until(() => threads() <= baseline + 4, `threads to return to ~${baseline} (now ${threads()})`, 15_000);
    assert.is(server.app.dispatcher.inFlightCount, 0);
  } finally {
    await server.close();
  }
});

churn.run();
