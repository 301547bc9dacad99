/**
 * The same server under Deno: `deno task dev` (deno.json's tasks and import map, the npm `deno` package's binary)
 * serves a real wrtc client from Node, and a WebSocket client, runs the embedded engine's GGUF model, and shuts
 * down cleanly; with its peers on node-datachannel too (its N-API binary loads under Deno, in the peer process and
 * in the server's).
 */
import wrtc from '@roamhq/wrtc';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { connect } from '../src/client/index.ts';
import { WebSocketClient } from '../src/transports/websocket/client.ts';
import { MODEL, MODELS_DIR } from './fixtures/models.ts';
import { spawnSync } from 'node:child_process';
import { DENO, startDevServer, withTimeout } from './fixtures/dev-server.ts';

const test = suite('deno');

test('deno task dev serves a wrtc client, a WebSocket and the embedded engine, then exits 0 on SIGTERM', async () => {
  assert.is(
    spawnSync(DENO, ['--version']).status,
    0,
    `no Deno at "${DENO}": npm install --prefix ~/.cache/tabagent-ci/deno deno@2.9.6, then DENO_BIN=~/.cache/tabagent-ci/deno/node_modules/.bin/deno (.ci/run does both; this test never skips)`,
  );
  const dataDir = await mkdtemp(path.join(tmpdir(), 'tabagent-deno-'));
  const server = await startDevServer({ TABAGENT_UPSTREAM_URL: 'off', TABAGENT_DATA_DIR: dataDir, TABAGENT_MODELS_DIR: MODELS_DIR }, undefined, 'deno');
  try {
    const client = await connect({ url: server.url, RTCPeerConnection: wrtc.RTCPeerConnection, reconnect: false });
    assert.is((await client.health()).status, 'ok');
    const payload = new Uint8Array(1 << 20).map((_, i) => i % 251);
    const { attachment } = await client.call('echo', { data: 'under deno' }, { attachment: payload });
    assert.equal(attachment, payload, 'a fragmented binary round trip');
    await client.add_documents({ documents: [{ id: 'd1', content: 'Deno runs the embedded store too' }] });
    const found = await client.rag_query({ query: 'embedded store', top_k: 1 });
    assert.ok(JSON.stringify(found).includes('d1'), 'the embedded store works under Deno');
    const stream = client.stream('chat', { model: MODEL, messages: [{ role: 'user', content: 'Once upon a time' }], stream: true, max_tokens: 12 });
    const deltas: string[] = [];
    for await (const chunk of stream) deltas.push(chunk.delta);
    const story = await stream.result;
    assert.is(story.usage?.completion_tokens, 12, 'node-llama-cpp runs under Deno');
    assert.is(deltas.join(''), story.response);
    await client.close();

    const socket = await WebSocketClient.connect(`${server.url.replace('http', 'ws')}/v1/ws`);
    assert.is((await socket.request({ action: 'health' })).frame.status, 'ok');
    await socket.close();

    server.process.kill('SIGTERM');
    assert.is(await withTimeout(server.exited, 20_000, () => `deno to exit; output:\n${server.output()}`), 0);
  } finally {
    server.process.kill('SIGKILL');
    await rm(dataDir, { recursive: true, force: true });
  }
});

for (const peerProcesses of ['1', '0']) {
  test(`deno task dev with TABAGENT_PEER_BACKEND=node-datachannel (peer processes: ${peerProcesses}) serves a wrtc client, then exits 0`, async () => {
    const dataDir = await mkdtemp(path.join(tmpdir(), 'tabagent-deno-'));
    const env = { TABAGENT_UPSTREAM_URL: 'off', TABAGENT_DATA_DIR: dataDir, TABAGENT_PEER_BACKEND: 'node-datachannel', TABAGENT_PEER_PROCESSES: peerProcesses };
    const server = await startDevServer(env, undefined, 'deno');
    try {
      const client = await connect({ url: server.url, RTCPeerConnection: wrtc.RTCPeerConnection, reconnect: false });
      const payload = new Uint8Array(1 << 20).map((_, i) => i % 251);
      const { attachment } = await client.call('echo', { data: 'libdatachannel under deno' }, { attachment: payload });
      assert.equal(attachment, payload, 'a fragmented binary round trip');
      await client.close();
      server.process.kill('SIGTERM');
      assert.is(await withTimeout(server.exited, 20_000, () => `deno to exit; output:\n${server.output()}`), 0);
    } finally {
      server.process.kill('SIGKILL');
      await rm(dataDir, { recursive: true, force: true });
    }
  });
}

test.run();
