/**
 * A temp project built from real Nix derivations, the real `nixdock watch` process on a free
 * port, and WebSocket clients that record what they receive.
 */
import type { ChildProcess } from 'node:child_process';
import WebSocket from 'ws';
import type { BuildEvent } from '../../src/events.js';
import type { ServerMessage } from '../../src/daemon/protocol.js';
import type { DaemonInfo } from '../../src/daemon/state-file.js';
import { exited, spawnNixdock } from '../helpers/cli.js';
import { helloApp, NIX_ENV } from '../helpers/nix.js';
import { tempProject, type Project } from '../helpers/project.js';
import type { Cleanup } from '../helpers/tmp.js';
import { until } from '../helpers/wait.js';

/** A project with one image `app` from images/app.json, whose contents are ./app.nix (helloApp). */
export function appProject(t: Cleanup, options: { message?: string; debounceMs?: number } = {}): Project {
  return tempProject(t, {
    'nixdock.config.json': { specs: ['images/*.json'], daemon: { port: 0, debounceMs: options.debounceMs ?? 100 } },
    'app.nix': helloApp(options.message ?? 'v1'),
    'images/app.json': appSpec({}),
  });
}

export function appSpec(env: Record<string, string>): string {
  return JSON.stringify({
    name: 'app',
    contents: [{ nix: '../app.nix' }],
    config: { Cmd: ['/bin/hello'], Env: Object.entries(env).map(([k, v]) => `${k}=${v}`) },
  }, null, 2);
}

export interface DaemonProcess {
  proc: ChildProcess;
  info: DaemonInfo;
  stdout(): string;
  stderr(): string;
  /** SIGTERM and wait for the exit code. */
  stop(): Promise<number | null>;
}

export function readInfo(project: Project): DaemonInfo | undefined {
  try {
    return JSON.parse(project.read('.nixdock/daemon.json')) as DaemonInfo;
  } catch {
    return undefined;
  }
}

/** Starts `nixdock watch --port 0` (with `env` added to the environment) and waits until its daemon.json names it. */
export async function startDaemon(project: Project, args: string[] = [], env?: NodeJS.ProcessEnv): Promise<DaemonProcess> {
  const proc = spawnNixdock(project.dir, ['watch', '--port', '0', ...args], env ? { env: { ...NIX_ENV, ...env } } : {});
  let out = '';
  let err = '';
  proc.stdout!.on('data', (d) => (out += d));
  proc.stderr!.on('data', (d) => (err += d));
  const info = await until(() => {
    if (proc.exitCode !== null) throw new Error(`nixdock watch exited with ${proc.exitCode}:\n${err}`);
    const i = readInfo(project);
    return i?.pid === proc.pid ? i : undefined;
  });
  return {
    proc,
    info,
    stdout: () => out,
    stderr: () => err,
    async stop() {
      if (proc.exitCode === null) proc.kill('SIGTERM');
      return exited(proc);
    },
  };
}

export interface Client {
  ws: WebSocket;
  messages: ServerMessage[];
  events(image?: string): BuildEvent[];
  /** Resolves with the first message (received so far or later) that matches. */
  waitFor<T extends ServerMessage>(match: (m: ServerMessage) => m is T, what?: string): Promise<T>;
  waitForEvent(match: (e: BuildEvent) => boolean, what?: string): Promise<BuildEvent>;
  closed: Promise<{ code: number; reason: string }>;
  send(value: unknown): void;
}

export function connect(info: DaemonInfo, options: { token?: string; headers?: Record<string, string> } = {}): Client {
  const token = options.token ?? info.token;
  const ws = new WebSocket(info.wsUrl, { headers: { Authorization: `Bearer ${token}`, ...options.headers } });
  const messages: ServerMessage[] = [];
  ws.on('message', (data) => messages.push(JSON.parse(String(data)) as ServerMessage));
  ws.on('error', () => undefined);
  const closed = new Promise<{ code: number; reason: string }>((done) => ws.on('close', (code, reason) => done({ code, reason: String(reason) })));
  const events = (image?: string) =>
    messages.flatMap((m) => (m.type === 'event' && (!image || m.event.image === image) ? [m.event] : []));
  return {
    ws,
    messages,
    events,
    closed,
    send: (value) => ws.send(typeof value === 'string' ? value : JSON.stringify(value)),
    waitFor: (match, what) => until(() => messages.find(match), what) as never,
    waitForEvent: (match, what) => until(() => events().find(match), what),
  };
}

/** Opens a client and resolves once it has its hello + snapshot. */
export async function connected(info: DaemonInfo): Promise<Client> {
  const client = connect(info);
  await client.waitFor((m): m is Extract<ServerMessage, { type: 'snapshot' }> => m.type === 'snapshot', 'snapshot');
  return client;
}

/** The upgrade's HTTP status when the daemon refuses a WebSocket. */
export function refusal(url: string, headers: Record<string, string>, protocols?: string[]): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, protocols, { headers });
    ws.on('open', () => { ws.close(); reject(new Error('the daemon accepted the connection')); });
    ws.on('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    ws.on('error', () => undefined);
  });
}

/**
 * Resolves once `image` has finished a build and nothing is pending: from a fresh snapshot when it
 * is already idle, else from the build:succeeded that must follow the snapshot.
 */
export async function settled(info: DaemonInfo, image: string): Promise<void> {
  const client = await connected(info);
  try {
    const snapshot = client.messages.find((m) => m.type === 'snapshot') as Extract<ServerMessage, { type: 'snapshot' }>;
    const state = snapshot.images.find((i) => i.name === image);
    if (state?.state === 'idle' && state.lastBuild?.status === 'succeeded') return;
    await client.waitForEvent((e) => e.type === 'build:succeeded' && e.image === image, `a build of ${image}`);
  } finally {
    client.ws.close();
  }
}
