/** Who may call from a browser: extensions by default, only the listed ones once any is listed, and configured web origins. */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { isOriginAllowed } from '../src/http/cors.ts';
import { startServer } from './fixtures/server.ts';

const test = suite('origins');
const MINE = 'chrome-extension://abcdefghijklmnopabcdefghijklmnop';
const OTHER = 'chrome-extension://ponmlkjihgfedcbaponmlkjihgfedcba';

test('every extension by default; listing extensions narrows them; web origins only when listed', () => {
  assert.ok(isOriginAllowed(OTHER, []));
  assert.not.ok(isOriginAllowed('https://evil.example', []));
  assert.ok(isOriginAllowed('https://app.example', ['https://app.example']));
  assert.ok(isOriginAllowed(MINE, [`${MINE}/`]), 'a trailing slash, as in manifests, matches');
  assert.not.ok(isOriginAllowed(OTHER, [`${MINE}/`]), 'another extension is refused once one is listed');
  assert.not.ok(isOriginAllowed(OTHER, ['https://app.example', MINE]));
  assert.ok(isOriginAllowed(OTHER, ['*']));
});

test('the server answers a listed extension precisely and refuses another with 403 forbidden', async () => {
  const server = await startServer({ allowedOrigins: [MINE] });
  try {
    const preflight = (origin: string) =>
      fetch(`${server.url}/v1/webrtc/offer`, { method: 'OPTIONS', headers: { origin, 'access-control-request-method': 'POST' } });
    const allowed = await preflight(MINE);
    assert.is(allowed.status, 204);
    assert.is(allowed.headers.get('access-control-allow-origin'), MINE);
    const refused = await fetch(`${server.url}/v1/webrtc/offer`, { method: 'POST', body: '{}', headers: { origin: OTHER } });
    assert.is(refused.status, 403);
    assert.is((await refused.json()).error.code, 'forbidden');
    assert.is(refused.headers.get('access-control-allow-origin'), null, 'no CORS grant for a refused origin');
  } finally {
    await server.close();
  }
});

test.run();
