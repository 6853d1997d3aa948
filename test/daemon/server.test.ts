/**
 * The server's connection hygiene, in-process with real sockets: clients that stop answering
 * pings are dropped, and a client that stops reading skips messages and then gets a snapshot
 * instead of an unbounded queue.
 */
import assert from 'node:assert/strict';
import { afterEach, test } from 'node:test';
import WebSocket from 'ws';
import type { ServerMessage } from '../../src/daemon/protocol.js';
import { DaemonServer } from '../../src/daemon/server.js';
import { until } from '../helpers/wait.js';

const TOKEN = 'test-token';
let server: DaemonServer;
let port: number;
let snapshots = 0;

async function startServer(pingIntervalMs: number): Promise<void> {
  server = new DaemonServer({
    host: '127.0.0.1',
    port: 0,
    token: TOKEN,
    pingIntervalMs,
    slowClientBytes: 64 * 1024,
    handlers: {
      greeting: () => [{ type: 'snapshot', images: [] }],
      snapshot: () => {
        snapshots += 1;
        return { type: 'snapshot', images: [] };
      },
      request: () => undefined,
    },
  });
  port = (await server.listen()).port;
}

afterEach(() => server.close());

/** Opens a client; `seen` records messages from the first one (the greeting may arrive with the handshake). */
function open(options: WebSocket.ClientOptions = {}, seen: ServerMessage[] = []): Promise<WebSocket> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`, { headers: { Authorization: `Bearer ${TOKEN}` }, ...options });
  ws.on('message', (d) => seen.push(JSON.parse(String(d)) as ServerMessage));
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

test('a client that stops answering pings is dropped; one that answers stays', async () => {
  await startServer(50);
  const healthy = await open();
  const silent = await open({ autoPong: false });
  const closed = new Promise<void>((done) => silent.once('close', () => done()));
  await closed;
  assert.equal(healthy.readyState, WebSocket.OPEN);
  assert.equal(server.clientCount, 1);
  healthy.close();
  await until(() => server.clientCount === 0, 'the healthy client to leave');
});

test('a client that stops reading skips messages, then resyncs from a snapshot', async () => {
  await startServer(600_000); // a paused client cannot answer pings; keep this test about buffering
  const fastSeen: ServerMessage[] = [];
  const slowSeen: ServerMessage[] = [];
  const fast = await open({}, fastSeen);
  const slow = await open({}, slowSeen);
  await until(() => fastSeen.length === 1 && slowSeen.length === 1, 'greetings');
  // Stop reading on the slow client: the server's send buffer for it fills up.
  (slow as unknown as { _socket: { pause(): void; resume(): void } })._socket.pause();
  // More than the kernel's socket buffers hold, so the server-side buffer grows past the limit.
  const big = 'x'.repeat(64 * 1024);
  const total = 300;
  for (let i = 0; i < total; i++) {
    server.broadcast({ type: 'error', error: { code: 'INTERNAL', message: `${i} ${big}` } });
    await new Promise((r) => setImmediate(r));
  }
  await until(() => fastSeen.length === total + 1, 'every message on the fast client');
  (slow as unknown as { _socket: { resume(): void } })._socket.resume();
  // The next message after the client has drained brings it back with a snapshot.
  await until(() => {
    server.broadcast({ type: 'config-reloaded', images: [] });
    return slowSeen.slice(1).some((m) => m.type === 'snapshot');
  }, 'a snapshot on the slow client');
  assert.ok(slowSeen.length < total, `the slow client got ${slowSeen.length} of ${total} messages, not all of them`);
  assert.ok(snapshots >= 1);
  fast.close();
  slow.close();
});
