/**
 * A real Debian `docker-registry` (docker/distribution) on 127.0.0.1 for push/pull tests:
 * own config, filesystem storage in a temp dir, deletes enabled, optional htpasswd auth.
 * Plus a tiny HTTP proxy in front of it that can refuse or corrupt chosen requests.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, createReadStream, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Image, ImageConfigFile, Layer } from '../../src/types.js';
import { sha256 } from './bytes.js';

export const REGISTRY_BIN = 'docker-registry';
export const REGISTRY_PACKAGE = 'docker-registry';

/** Credentials accepted by a registry started with `auth: true`. */
export const REGISTRY_USER = 'nixdock';
export const REGISTRY_PASSWORD = 'nixdock-secret';
// bcrypt (cost 4, the registry's minimum) of REGISTRY_PASSWORD, made once with python3's crypt
// module: no htpasswd (apache2-utils) needed at test time.
const HTPASSWD_LINE = `${REGISTRY_USER}:$2b$04$aLr.8Ni1l1QLqC/Hg7rMPe3MCPHAL7KHmaljZwV9R3W89QTBLBfEG`;

export interface TestRegistry {
  /** `127.0.0.1:PORT`, the registry part of references. */
  host: string;
  port: number;
  url: string;
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

export async function startRegistry(opts: { auth?: boolean } = {}): Promise<TestRegistry> {
  const dir = mkdtempSync(join(tmpdir(), 'nixdock-registry-'));
  const port = await freePort();
  const config = join(dir, 'config.yml');
  const auth = opts.auth
    ? `auth:\n  htpasswd:\n    realm: nixdock-test\n    path: ${join(dir, 'htpasswd')}\n`
    : '';
  if (opts.auth) writeFileSync(join(dir, 'htpasswd'), HTPASSWD_LINE + '\n');
  writeFileSync(
    config,
    `version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: ${join(dir, 'data')}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:${port}
  secret: nixdock-test-only
${auth}`,
  );
  // stderr into a file, not a pipe: a caller blocked in spawnSync (the benchmark) cannot drain a
  // pipe, and the registry, logging each 404 HEAD, would stall once the pipe buffer is full.
  const log = join(dir, 'stderr.log');
  const logFd = openSync(log, 'w');
  const child = spawn(REGISTRY_BIN, ['serve', config], { stdio: ['ignore', 'ignore', logFd] });
  closeSync(logFd);
  const stderr = () => readFileSync(log, 'utf8');
  const registry: TestRegistry = {
    host: `127.0.0.1:${port}`,
    port,
    url: `http://127.0.0.1:${port}`,
    stop: async () => {
      await killAndWait(child);
      rmSync(dir, { recursive: true, force: true });
    },
  };
  try {
    await waitForV2(registry.url, child, stderr);
  } catch (err) {
    await registry.stop();
    throw err;
  }
  return registry;
}

async function waitForV2(url: string, child: ChildProcess, stderr: () => string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (child.exitCode !== null) throw new Error(`docker-registry exited (${child.exitCode}): ${stderr()}`);
    const status = await fetch(`${url}/v2/`).then((r) => r.status, () => 0);
    if (status === 200 || status === 401) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`docker-registry did not answer on ${url}: ${stderr()}`);
}

async function killAndWait(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await exited;
}

export interface ProxiedRequest {
  method: string;
  url: string;
  /** Bytes of the request body. */
  bodyBytes: number;
}

export interface ProxyRules {
  /** Answer with this status instead of forwarding (undefined: forward). */
  refuse?(req: ProxiedRequest): number | undefined;
  /** Rewrite a forwarded response body. */
  rewrite?(req: ProxiedRequest, body: Buffer): Buffer;
}

export interface TestProxy {
  host: string;
  requests: ProxiedRequest[];
  stop(): Promise<void>;
}

/** An HTTP proxy on 127.0.0.1 in front of `targetPort` (bodies buffered: for small test images only). */
export async function startProxy(targetPort: number, rules: ProxyRules = {}): Promise<TestProxy> {
  const requests: ProxiedRequest[] = [];
  const server = http.createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks);
    const seen: ProxiedRequest = { method: req.method!, url: req.url!, bodyBytes: body.length };
    requests.push(seen);
    const refused = rules.refuse?.(seen);
    if (refused !== undefined) {
      res.writeHead(refused, { 'content-type': 'application/json' }).end('{"errors":[{"code":"UNSUPPORTED","message":"refused by test proxy"}]}');
      return;
    }
    // The Host header is kept, so the registry's Location headers point back at the proxy.
    const upstream = http.request({ host: '127.0.0.1', port: targetPort, method: req.method, path: req.url, headers: req.headers }, async (up) => {
      const parts: Buffer[] = [];
      for await (const chunk of up) parts.push(chunk as Buffer);
      let out: Buffer = Buffer.concat(parts);
      if (rules.rewrite && req.method === 'GET') out = rules.rewrite(seen, out);
      const headers = { ...up.headers };
      delete headers['transfer-encoding'];
      if (req.method !== 'HEAD') headers['content-length'] = String(out.length);
      res.writeHead(up.statusCode!, headers).end(out);
    });
    upstream.on('error', () => res.destroy());
    upstream.end(body);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as net.AddressInfo;
  return {
    host: `127.0.0.1:${port}`,
    requests,
    stop: () => new Promise((r) => { server.closeAllConnections(); server.close(() => r()); }),
  };
}

// ─────────────── image fixtures (until the project's own builder is used here) ───────────────

/**
 * An Image whose layers are GNU tars of real store paths (one layer per entry of `layerPaths`),
 * written into `dir`; config by hand. Enough for the registry code, which only needs bytes.
 */
export function tarImage(dir: string, name: string, layerPaths: string[][], cmd: string[]): Image {
  const layers = layerPaths.map((paths, i): Layer => {
    const file = join(dir, `layer-${i}.tar`);
    execFileSync('tar', ['--sort=name', '--mtime=@1', '--owner=0', '--group=0', '--numeric-owner', '--format=gnu', '-C', '/', '-cf', file, ...paths.map((p) => p.slice(1))]);
    const bytes = readFileSync(file);
    const diffId = sha256(bytes);
    return {
      source: {
        kind: 'store',
        key: diffId.slice(7),
        storePaths: paths,
        description: paths.join(' '),
        size: async () => bytes.length,
        open: () => createReadStream(file),
      },
      diffId,
      size: bytes.length,
      built: true,
      compressed: {},
    };
  });
  const config: ImageConfigFile = {
    created: '1970-01-01T00:00:01Z',
    architecture: 'amd64',
    os: 'linux',
    config: { Cmd: cmd },
    rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
    history: layers.map((l) => ({ created: '1970-01-01T00:00:01Z', created_by: l.source.description })),
  };
  const configBytes = Buffer.from(JSON.stringify(config));
  return { name, tag: 'latest', layers, config, configBytes, configDigest: sha256(configBytes) };
}
