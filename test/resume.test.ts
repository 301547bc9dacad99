/**
 * Reconnection with real wrtc peers on both sides: the server loses a client's peer (as when ICE fails after a
 * network change or sleep), the client reconnects with its resume token, and nothing is lost or repeated.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { AppError, Chunk, ConnectionState, TabAgent } from '../src/client/index.ts';
import { fakeInference } from './fixtures/engine.ts';
import { startServer, until, type TestServer } from './fixtures/server.ts';

const test = suite('resume');
const words = (n: number) => Array.from({ length: n }, (_, i) => `w${i}`).join(' ');
const FAST_RECONNECT = { initialDelayMs: 20, maxDelayMs: 200 };

/** The server loses the client's peer, by the path an ICE failure takes: the session closes the peer and waits. */
function dropPeer(server: TestServer, client: TabAgent): void {
  server.app.sessions.get(client.sessionId).lose('peer connection failed');
}

function statesOf(client: TabAgent): ConnectionState[] {
  const states: ConnectionState[] = [];
  client.on('connection', (state) => states.push(state));
  return states;
}

test('a stream cut by a dropped peer resumes on a new one: every chunk and the answer exactly once', async () => {
  const server = await startServer({}, { engines: fakeInference({ tokenDelayMs: 25 }) });
  try {
    const client = await server.client({ reconnect: FAST_RECONNECT });
    const { sessionId } = client;
    const states = statesOf(client);
    const stream = client.stream('chat', { messages: [{ role: 'user', content: words(30) }] });
    const chunks: Chunk[] = [];
    for await (const chunk of stream) {
      chunks.push(chunk);
      if (chunks.length === 5) dropPeer(server, client);
    }
    const answer = await stream.result;

    assert.equal(chunks.map((c) => c.index), [...Array(30).keys()], 'each index once, in order');
    assert.is(chunks.map((c) => c.delta).join(''), words(30), 'the chunks add up to the text');
    assert.is(answer.response, words(30));
    assert.is(client.sessionId, sessionId, 'the same session');
    assert.is(server.app.sessions.get(sessionId).info().counts.resumes, 1);
    assert.equal(states, ['reconnecting', 'connected']);
  } finally {
    await server.close();
  }
});

test('an answer that finished while the client was away is delivered once, after the resume', async () => {
  const server = await startServer({}, { engines: fakeInference({ tokenDelayMs: 10 }) });
  try {
    const client = await server.client({ reconnect: { initialDelayMs: 400, maxDelayMs: 400 } });
    let answers = 0;
    const pending = client.chat({ messages: [{ role: 'user', content: words(10) }] }).then((answer) => {
      answers++;
      return answer;
    });
    await until(() => server.app.dispatcher.inFlightCount === 1, 'the request to start');
    dropPeer(server, client);
    await until(() => server.app.dispatcher.inFlightCount === 0, 'the request to finish while the client is away');
    assert.is(server.app.sessions.get(client.sessionId).state, 'suspended');
    assert.is((await pending).response, words(10));
    await client.health();
    assert.is(answers, 1);
  } finally {
    await server.close();
  }
});

test('requests made while reconnecting wait in a bounded queue and go out on resume', async () => {
  const server = await startServer();
  try {
    const client = await server.client({ reconnect: { initialDelayMs: 300, maxDelayMs: 300 }, maxQueued: 2 });
    dropPeer(server, client);
    await until(() => client.state === 'reconnecting', 'the client to notice');
    const queued = [client.echo({ data: 'one' }), client.echo({ data: 'two' })];
    const third = await client.echo({ data: 'three' }).catch((error: AppError) => error);
    assert.is((third as AppError).code, 'not_connected', 'past the bound: a clear error at once');
    assert.is(client.queued, 2);
    const answers = await Promise.all(queued);
    assert.equal(answers.map((a) => a.data), ['one', 'two'], 'sent in order once resumed');
  } finally {
    await server.close();
  }
});

test('a session the server no longer has: a new one is opened, unstarted requests are sent again, a cut stream fails interrupted', async () => {
  const server = await startServer({}, { engines: fakeInference({ tokenDelayMs: 40 }) });
  try {
    const client = await server.client({ reconnect: FAST_RECONNECT });
    const oldSession = client.sessionId;
    const stream = client.stream('chat', { messages: [{ role: 'user', content: words(20) }] });
    const chunks: Chunk[] = [];
    const streamed = (async () => {
      for await (const chunk of stream) chunks.push(chunk);
    })().catch((error: AppError) => error);
    await until(() => chunks.length >= 2, 'the stream to start');
    // As after a restart: the server forgets the session, with the client's request lost in it.
    server.app.sessions.close(oldSession);
    const after = client.echo({ data: 'after' });
    assert.is(((await streamed) as AppError).code, 'interrupted', 'a half-delivered stream is not re-run');
    assert.is((await after).data, 'after', 'a request made meanwhile is answered by the new session');
    assert.is.not(client.sessionId, oldSession);
    assert.is(server.app.sessions.size, 1, 'the old session is gone, the new one serves');
  } finally {
    await server.close();
  }
});

test('an unknown or used-up resume token is not_found, and a new session works as ever', async () => {
  const server = await startServer();
  try {
    const error = await server.app
      .fetch(
        new Request(`${server.url}/v1/webrtc/offer`, { method: 'POST', body: JSON.stringify({ resumeToken: 'nope' }) }),
        { ip: '127.0.0.1' },
      )
      .then((response) => response.json());
    assert.is(error.error.code, 'not_found');
  } finally {
    await server.close();
  }
});

test('a resume frame on a channel the client opened is refused; the session keeps serving', async () => {
  const server = await startServer();
  try {
    const client = await server.client();
    const channel = client.pc.createDataChannel('mine');
    await until(() => channel.readyState === 'open', 'the client channel to open');
    const reply = new Promise<Record<string, unknown>>((resolve) => (channel.onmessage = ({ data }) => resolve(JSON.parse(data))));
    channel.send(JSON.stringify({ type: 'resume', pending: [] }));
    const frame = await reply;
    assert.is(frame.type, 'error');
    assert.is(frame.code, 'invalid_request');
    assert.is((await client.health()).status, 'ok');
  } finally {
    await server.close();
  }
});

test.run();
