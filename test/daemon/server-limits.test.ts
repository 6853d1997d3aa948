/**
 * The daemon's limits with real WebSocket clients: a client that sends requests without reading
 * the replies does not make the daemon buffer them (it stops reading that client instead), and
 * gets every reply once it reads again.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { afterEach, test } from 'node:test';
import WebSocket from 'ws';
import type { ServerMessage } from '../../src/daemon/protocol.js';
import { DaemonServer, MAX_REPLIES_IN_FLIGHT } from '../../src/daemon/server.js';
import { until } from '../helpers/wait.js';

const TOKEN = 'test-token';
const REPLY_BYTES = 256 * 1024;
const REQUESTS = 1000;
let server: DaemonServer | undefined;

afterEach(() => server?.close());

test(`${REQUESTS} history requests from a client that does not read: at most a bounded number answered until it reads, then all`, async () => {
  let answered = 0;
  const builds = 'x'.repeat(REPLY_BYTES);
  server = new DaemonServer({
    host: '127.0.0.1',
    port: 0,
    token: TOKEN,
    pingIntervalMs: 600_000, // a paused client cannot answer pings; this test is about buffering
    slowClientBytes: 1024 * 1024,
    handlers: {
      greeting: () => [],
      snapshot: () => ({ type: 'snapshot', images: [] }),
      request: () => {
        answered += 1;
        return { type: 'history', builds: [], padding: builds } as unknown as ServerMessage;
      },
    },
  });
  const { port } = await server.listen();
  const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`, { headers: { Authorization: `Bearer ${TOKEN}` } });
  await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
  let replies = 0;
  ws.on('message', () => (replies += 1));
  const socket = (ws as unknown as { _socket: { pause(): void; resume(): void } })._socket;
  socket.pause();
  for (let i = 0; i < REQUESTS; i++) ws.send(JSON.stringify({ type: 'history', limit: 5 }));
  await new Promise((r) => setTimeout(r, 1500));
  // Kernel socket buffers absorb a few replies beyond the in-flight bound; a few MB, not 250.
  assert.ok(answered >= MAX_REPLIES_IN_FLIGHT, `answered ${answered}`);
  assert.ok(answered < 100, `answered ${answered} of ${REQUESTS} requests while the client read nothing`);
  socket.resume();
  await until(() => replies === REQUESTS, `all ${REQUESTS} replies`);
  assert.equal(answered, REQUESTS);
  ws.close();
});

/** Status and CSP of GET / with the given Host header. */
function getWithHost(port: number, host: string): Promise<{ status: number; csp?: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: '/', headers: { host } }, (res) => {
      res.resume();
      resolve({ status: res.statusCode!, csp: res.headers['content-security-policy'] as string | undefined });
    });
    req.on('error', reject);
    req.end();
  });
}

test('a Host header that does not name the daemon is refused (DNS rebinding), and never reaches the CSP', async () => {
  server = new DaemonServer({
    host: '127.0.0.1',
    port: 0,
    token: TOKEN,
    handlers: { greeting: () => [], snapshot: () => ({ type: 'snapshot', images: [] }), request: () => undefined },
  });
  const { port } = await server.listen();
  const good = await getWithHost(port, `localhost:${port}`);
  assert.equal(good.status, 200);
  assert.match(good.csp ?? '', new RegExp(`connect-src 'self' ws://localhost:${port};`));
  assert.equal((await getWithHost(port, `evil.example:${port}`)).status, 403);
  assert.equal((await getWithHost(port, `127.0.0.1:${port}; script-src *`)).status, 403);
  const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`, { headers: { Authorization: `Bearer ${TOKEN}`, host: `rebound.example:${port}` } });
  const status = await new Promise<number>((resolve) => ws.once('unexpected-response', (_req, res) => resolve(res.statusCode!)).once('open', () => resolve(101)));
  assert.equal(status, 403);
});
