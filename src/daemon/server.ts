/**
 * The daemon's HTTP + WebSocket endpoint.
 *
 * - GET / (and its assets) serves the dashboard. The page itself holds no secret: the token
 *   reaches it in the URL fragment (`#token=…`), which browsers never send to a server.
 * - The WebSocket lives at /ws. Before a socket joins, the upgrade handler checks the Origin
 *   (absent for CLI clients; otherwise only the daemon's own origin) and the token, carried as
 *   `Authorization: Bearer <token>` (CLI clients) or as the offered subprotocol
 *   `nixdock.token.<token>` (browsers cannot set headers; the server answers with `nixdock.v1`).
 * - Each message is serialised once and fanned out; a client whose send buffer is over the limit
 *   skips messages and gets a fresh snapshot once it has drained, so memory stays bounded.
 * - Replies to a client's own requests cannot be skipped, so they are bounded the other way: while
 *   a client has MAX_REPLIES_IN_FLIGHT replies not yet written out (or its buffer is over the
 *   limit), the server stops reading from it. Its requests then wait in its own TCP buffers, not
 *   in the daemon's memory; reading resumes once it has taken its replies.
 */
import { timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { NixdockError } from '../errors.js';
import { serveAsset } from './assets.js';
import {
  MAX_CLIENT_MESSAGE_BYTES, ProtocolViolation, SUBPROTOCOL, TOKEN_SUBPROTOCOL_PREFIX, parseClientMessage,
  type ClientMessage, type ServerMessage,
} from './protocol.js';

export interface ServerHandlers {
  /** First messages a client receives: hello, then the snapshot (and a config error if any). */
  greeting(): ServerMessage[];
  snapshot(): ServerMessage;
  /** Answers one client request; a thrown NixdockError becomes an `error` message. */
  request(message: ClientMessage): ServerMessage | undefined;
}

export interface ServerOptions {
  host: string;
  port: number;
  token: string;
  handlers: ServerHandlers;
  /** Ping period; a client that has not answered the previous ping by the next one is dropped. Default 30 s. */
  pingIntervalMs?: number;
  /** Send-buffer size above which a client skips messages. Default 1 MiB. */
  slowClientBytes?: number;
}

interface Client {
  ws: WebSocket;
  alive: boolean;
  lagging: boolean;
  /** Replies handed to the socket and not yet written out. */
  inFlight: number;
  /** Reading from the client is paused until it takes its replies. */
  paused: boolean;
  /** Requests that were already read off the socket when it was paused (at most a socket read's worth). */
  pending: Array<{ data: Buffer; isBinary: boolean }>;
}

/** Replies a client may have outstanding before the server stops reading its requests. */
export const MAX_REPLIES_IN_FLIGHT = 16;
/** Requests held while paused; more means the client ignores backpressure, and it is closed. */
export const MAX_PENDING_REQUESTS = 4096;

const WILDCARD_HOSTS = new Set(['0.0.0.0', '::', '[::]']);

function refuse(socket: Duplex, status: number, reason: string): void {
  const text = { 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found' }[status] ?? 'Error';
  socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(reason)}\r\n\r\n${reason}`);
}

function sameSecret(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

function offeredProtocols(req: IncomingMessage): string[] {
  return (req.headers['sec-websocket-protocol'] ?? '').split(',').map((p) => p.trim()).filter(Boolean);
}

function tokenOf(req: IncomingMessage): string | undefined {
  const auth = req.headers.authorization;
  if (auth?.startsWith('Bearer ')) return auth.slice('Bearer '.length).trim();
  return offeredProtocols(req).find((p) => p.startsWith(TOKEN_SUBPROTOCOL_PREFIX))?.slice(TOKEN_SUBPROTOCOL_PREFIX.length);
}

export class DaemonServer {
  private readonly http: Server;
  private readonly wss: WebSocketServer;
  private readonly clients = new Set<Client>();
  private pingTimer?: NodeJS.Timeout;

  constructor(private readonly options: ServerOptions) {
    this.http = createServer((req, res) => this.serveHttp(req, res));
    this.wss = new WebSocketServer({
      noServer: true,
      maxPayload: MAX_CLIENT_MESSAGE_BYTES,
      handleProtocols: (offered) => (offered.has(SUBPROTOCOL) ? SUBPROTOCOL : false),
    });
    this.http.on('upgrade', (req, socket, head) => this.upgrade(req, socket, head));
  }

  /** Listens; rejects with a DAEMON error when the port is taken. */
  async listen(): Promise<AddressInfo> {
    await new Promise<void>((resolve, reject) => {
      this.http.once('error', (err: NodeJS.ErrnoException) => reject(
        new NixdockError('DAEMON', `Cannot listen on ${this.options.host}:${this.options.port}: ${err.code ?? err.message}`, {
          found: err.code, hint: 'Choose another port with --port (or daemon.port in the config); 0 picks a free one.', cause: err,
        }),
      ));
      this.http.listen(this.options.port, this.options.host, () => resolve());
    });
    const ping = this.options.pingIntervalMs ?? 30_000;
    this.pingTimer = setInterval(() => this.heartbeat(), ping);
    return this.address();
  }

  address(): AddressInfo {
    return this.http.address() as AddressInfo;
  }

  get clientCount(): number {
    return this.clients.size;
  }

  broadcast(message: ServerMessage): void {
    const data = JSON.stringify(message);
    for (const client of this.clients) this.deliver(client, data);
  }

  /** Closes every client (1001 "going away"), then the listening socket. */
  async close(): Promise<void> {
    clearInterval(this.pingTimer);
    const closed = [...this.clients].map((c) => new Promise<void>((done) => {
      c.ws.once('close', () => done());
      c.ws.close(1001, 'nixdock daemon shutting down');
    }));
    // A client that never answers the close frame must not hold the port.
    const grace = new Promise<void>((done) => setTimeout(done, 1000).unref());
    await Promise.race([Promise.all(closed), grace]);
    for (const c of this.clients) c.ws.terminate();
    this.wss.close();
    this.http.closeAllConnections();
    await new Promise<void>((done) => this.http.close(() => done()));
  }

  /** `host:port` values a request may name in its Host header: the listening address (and loopback aliases). */
  private allowedHosts(): Set<string> {
    const { port } = this.address();
    const hosts = [this.options.host];
    if (['127.0.0.1', 'localhost', '::1'].includes(this.options.host)) hosts.push('127.0.0.1', 'localhost', '[::1]');
    return new Set(hosts.map((h) => `${h.includes(':') && !h.startsWith('[') ? `[${h}]` : h}:${port}`));
  }

  private allowedOrigins(): Set<string> {
    return new Set([...this.allowedHosts()].map((h) => `http://${h}`));
  }

  /**
   * The Host header, when it names this daemon. A DNS-rebinding page reaches 127.0.0.1 under its
   * own name, and the value is echoed into the CSP header, so anything else is refused. A daemon
   * bound to every interface cannot list its names: there only the grammar is checked.
   */
  private checkedHost(req: IncomingMessage): string | undefined {
    const host = req.headers.host;
    if (host === undefined) return undefined;
    if (WILDCARD_HOSTS.has(this.options.host)) return /^[A-Za-z0-9.-]+(:\d+)?$|^\[[0-9A-Fa-f:.]+\](:\d+)?$/.test(host) ? host : undefined;
    return this.allowedHosts().has(host.toLowerCase()) ? host.toLowerCase() : undefined;
  }

  /** Auth happens here, before the socket joins: a refused client never sees a message. */
  private upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    if (path !== '/ws') return refuse(socket, 404, 'The WebSocket endpoint is /ws');
    if (this.checkedHost(req) === undefined) return refuse(socket, 403, 'Host does not name this nixdock daemon');
    const origin = req.headers.origin;
    if (origin !== undefined && !this.allowedOrigins().has(origin)) {
      return refuse(socket, 403, `Origin ${origin} may not connect to the nixdock daemon`);
    }
    const token = tokenOf(req);
    if (token === undefined) return refuse(socket, 401, 'Missing token: send "Authorization: Bearer <token>" (see <cacheDir>/daemon.json)');
    if (!sameSecret(token, this.options.token)) return refuse(socket, 401, 'Wrong token (see <cacheDir>/daemon.json)');
    this.wss.handleUpgrade(req, socket, head, (ws) => this.join(ws));
  }

  private join(ws: WebSocket): void {
    const client: Client = { ws, alive: true, lagging: false, inFlight: 0, paused: false, pending: [] };
    this.clients.add(client);
    ws.on('pong', () => { client.alive = true; });
    ws.on('message', (data, isBinary) => this.receive(client, data as Buffer, isBinary));
    ws.on('close', () => this.clients.delete(client));
    ws.on('error', () => this.clients.delete(client)); // e.g. 1009 oversized: ws closes the socket itself
    for (const message of this.options.handlers.greeting()) ws.send(JSON.stringify(message));
  }

  private receive(client: Client, data: Buffer, isBinary: boolean): void {
    if (!client.paused) return this.handle(client, data, isBinary);
    client.pending.push({ data, isBinary });
    if (client.pending.length > MAX_PENDING_REQUESTS) {
      client.pending = [];
      client.ws.close(1008, 'Too many requests without reading the replies');
    }
  }

  private handle(client: Client, data: Buffer, isBinary: boolean): void {
    if (isBinary) return client.ws.close(1003, 'Binary messages are not accepted; send JSON text');
    let message: ClientMessage;
    try {
      message = parseClientMessage(data.toString('utf8'));
    } catch (err) {
      const reason = (err as ProtocolViolation).message;
      if (reason.startsWith('message is not valid JSON')) return client.ws.close(1008, 'Malformed JSON');
      return this.sendError(client, new NixdockError('INPUT_INVALID', reason, { hint: 'See docs/protocol.md for the client messages.' }));
    }
    try {
      const reply = this.options.handlers.request(message);
      if (reply) this.reply(client, JSON.stringify(reply));
    } catch (err) {
      this.sendError(client, err instanceof NixdockError ? err : new NixdockError('INTERNAL', String(err)), message.type);
    }
  }

  private sendError(client: Client, error: NixdockError, request?: string): void {
    const message: ServerMessage = { type: 'error', error: error.toJSON(), ...(request && { request }) };
    this.reply(client, JSON.stringify(message));
  }

  /** A reply is never skipped; instead a client with too many unwritten replies is not read from until they are out. */
  private reply(client: Client, data: string): void {
    client.inFlight += 1;
    client.ws.send(data, () => {
      client.inFlight -= 1;
      if (client.paused && client.inFlight === 0) this.unpause(client);
    });
    const limit = this.options.slowClientBytes ?? 1024 * 1024;
    if (!client.paused && (client.inFlight >= MAX_REPLIES_IN_FLIGHT || client.ws.bufferedAmount > limit)) {
      client.paused = true;
      client.ws.pause();
    }
  }

  /** Answers the requests held while paused (which may pause it again), then reads from the socket again. */
  private unpause(client: Client): void {
    client.paused = false;
    while (!client.paused && client.pending.length > 0) {
      const { data, isBinary } = client.pending.shift()!;
      this.handle(client, data, isBinary);
    }
    if (!client.paused) client.ws.resume();
  }

  /** Bounded memory per client: a lagging client skips messages and later resyncs from a snapshot. */
  private deliver(client: Client, data: string): void {
    const limit = this.options.slowClientBytes ?? 1024 * 1024;
    if (client.lagging) {
      if (client.ws.bufferedAmount > limit / 2) return;
      client.lagging = false;
      client.ws.send(JSON.stringify(this.options.handlers.snapshot()));
      return; // the snapshot already includes what `data` reports
    }
    if (client.ws.bufferedAmount > limit) {
      client.lagging = true;
      return;
    }
    client.ws.send(data);
  }

  private heartbeat(): void {
    for (const client of this.clients) {
      if (!client.alive) {
        client.ws.terminate();
        this.clients.delete(client);
        continue;
      }
      client.alive = false;
      client.ws.ping();
      if (client.lagging) this.deliver(client, ''); // resync a client that drained while nothing happened
    }
  }

  private serveHttp(req: IncomingMessage, res: ServerResponse): void {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { Allow: 'GET, HEAD' }).end();
      return;
    }
    const host = this.checkedHost(req);
    if (host === undefined) {
      res.writeHead(403, { 'Content-Type': 'text/plain; charset=utf-8' }).end('Host does not name this nixdock daemon\n');
      return;
    }
    serveAsset(new URL(req.url ?? '/', 'http://x').pathname, host, req, res);
  }
}
