/**
 * An https registry that tries to move nixdock to plain http, through the real CLI over real TLS:
 * a registry on 127.0.0.2 (loopback, but not a name nixdock treats as local, so it speaks https)
 * with a self-signed certificate the child trusts through NODE_EXTRA_CA_CERTS. A blob redirect, an
 * upload Location and a token realm on http are each refused, and the http server they name
 * receives nothing — neither bytes nor credentials. The same registry with https locations works,
 * so the refusals are not TLS failures.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { nixdockArgv, REPO, type CliRun } from '../helpers/cli.js';
import { NIX_ENV } from '../helpers/nix.js';
import { missingTools } from '../helpers/tools.js';
import { sha256 } from '../helpers/bytes.js';
import { tinyImage } from '../registry/fake-registry.js';

const SECRET = 'hunter2-over-tls';
const AUTH = `Basic ${Buffer.from(`alice:${SECRET}`).toString('base64')}`;
const HELLO = '/nix/store/lmyy4dl2bzjln51xcr9cjadm3x1nq9fm-hello-static';
const NEEDS = missingTools([['openssl', 'openssl']]);

type Route = (req: http.IncomingMessage, res: http.ServerResponse, origin: string) => void;

interface Server {
  origin: string;
  requests: Array<{ method: string; path: string; authorization?: string }>;
  close(): Promise<void>;
}

async function listen(server: http.Server | https.Server, host: string, scheme: string, requests: Server['requests']): Promise<Server> {
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    origin: `${scheme}://${host}:${port}`,
    requests,
    close: () => new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

function serve(kind: 'http' | 'https', host: string, tls: { key: Buffer; cert: Buffer } | undefined, route: Route): Promise<Server> {
  const requests: Server['requests'] = [];
  let origin = '';
  const handler = (req: http.IncomingMessage, res: http.ServerResponse) => {
    requests.push({ method: req.method!, path: req.url!, ...(req.headers.authorization && { authorization: req.headers.authorization }) });
    req.resume();
    req.on('end', () => route(req, res, origin));
  };
  const server = kind === 'https' ? https.createServer(tls!, handler) : http.createServer(handler);
  return listen(server, host, kind, requests).then((s) => {
    origin = s.origin;
    return s;
  });
}

function send(res: http.ServerResponse, status: number, body: Buffer | string = '', headers: Record<string, string> = {}): void {
  const bytes = Buffer.from(body);
  res.writeHead(status, { 'content-length': String(bytes.length), ...headers }).end(bytes);
}

let work: string;
let ca: string;
let tls: { key: Buffer; cert: Buffer };
let plain: Server;
const image = tinyImage();

before(async () => {
  if (NEEDS) return;
  work = mkdtempSync(join(tmpdir(), 'nixdock-https-'));
  ca = join(work, 'cert.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.2',
    '-addext', 'subjectAltName=IP:127.0.0.2', '-keyout', join(work, 'key.pem'), '-out', ca], { stdio: 'ignore' });
  tls = { key: readFileSync(join(work, 'key.pem')), cert: readFileSync(ca) };
  // Where the hostile registry points: plain http. It must never be asked anything.
  plain = await serve('http', '127.0.0.1', undefined, (_req, res) => send(res, 200, '{"token":"t"}', { 'content-type': 'application/json' }));
});
after(async () => {
  if (NEEDS) return;
  await plain.close();
  rmSync(work, { recursive: true, force: true });
});

/** The registry: Basic auth on /v2/, `route` for the rest (after auth). */
function registry(route: Route): Promise<Server> {
  return serve('https', '127.0.0.2', tls, (req, res, origin) => {
    if (req.headers.authorization !== AUTH) return send(res, 401, '{}', { 'www-authenticate': 'Basic realm="fake"' });
    if (req.url === '/v2/') return send(res, 200, '{}');
    route(req, res, origin);
  });
}

function nixdock(cwd: string, args: string[]): Promise<CliRun> {
  const env = { ...NIX_ENV, NODE_EXTRA_CA_CERTS: ca, NIXDOCK_REGISTRY_USER: 'alice', NIXDOCK_REGISTRY_PASSWORD: SECRET, XDG_CACHE_HOME: join(work, 'xdg'), REGISTRY_AUTH_FILE: join(work, 'no-auth.json') };
  const child = spawn(process.execPath, nixdockArgv(args), { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d));
  child.stderr.on('data', (d: Buffer) => (stderr += d));
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (status) => resolve({ status, stdout, stderr }));
  });
}

/** Serves the tiny image; blobs go where `blobAt` says (undefined: served here). */
function imageRoute(blobAt: (origin: string, digest: string) => string | undefined): Route {
  return (req, res, origin) => {
    if (req.url!.includes('/manifests/')) return send(res, 200, image.manifest, { 'content-type': 'application/vnd.oci.image.manifest.v1+json' });
    const digest = decodeURIComponent(req.url!.split(/\/blobs\/|^\/cdn\//)[1] ?? '');
    const blob = image.blobs.get(digest);
    if (!blob) return send(res, 404, '{"errors":[{"code":"BLOB_UNKNOWN"}]}');
    if (req.url!.startsWith('/cdn/')) return send(res, 200, blob);
    const elsewhere = blobAt(origin, digest);
    if (elsewhere) return send(res, 307, '', { location: elsewhere });
    send(res, 200, blob);
  };
}

function noRequestsTo(server: Server): void {
  assert.deepEqual(server.requests, [], 'the plain-http server was asked something');
}

describe('https → http through the real CLI over TLS', { skip: NEEDS }, () => {
  test('control: the same registry with https blob redirects pulls fine', async () => {
    const target = await registry(imageRoute((origin, digest) => (digest === sha256(image.layer) ? `${origin}/cdn/${digest}` : undefined)));
    try {
      const ref = `${target.origin.slice('https://'.length)}/img@${image.manifestDigest}`;
      const run = await nixdock(work, ['pull', '--json', ref]);
      assert.equal(run.status, 0, run.stderr);
      assert.ok(target.requests.some((r) => r.path.startsWith('/cdn/')), 'the redirect was followed over https');
    } finally {
      await target.close();
    }
  });

  test('pull: a blob redirect to plain http is refused (REGISTRY, exit 1), nothing cached, the http host asked nothing', async () => {
    const target = await registry(imageRoute((_origin, digest) => (digest === sha256(image.layer) ? `${plain.origin}/steal/${digest}` : undefined)));
    try {
      const cache = mkdtempSync(join(work, 'pull-'));
      const ref = `${target.origin.slice('https://'.length)}/img2@${image.manifestDigest}`;
      const run = await nixdock(work, ['pull', '--json', '--cache-dir', cache, ref]);
      assert.equal(run.status, 1, run.stderr);
      const error = (JSON.parse(run.stdout) as { error: { code: string; message: string; found?: string } }).error;
      assert.equal(error.code, 'REGISTRY');
      assert.match(error.message, /sent nixdock from https to plain http/);
      assert.match(error.found ?? '', /^http:\/\/127\.0\.0\.1/);
      noRequestsTo(plain);
      assert.doesNotMatch(run.stdout + run.stderr, new RegExp(SECRET));
      assert.equal(existsSync(join(cache, 'pulled', 'blobs')), false, 'nothing was cached');
    } finally {
      await target.close();
    }
  });

  test('push: an upload Location on plain http is refused before a byte is sent; a Bearer realm on http is refused before the password is', async () => {
    const project = mkdtempSync(join(work, 'project-'));
    writeFileSync(join(project, 'package.json'), '{"name":"p","private":true}');
    writeFileSync(join(project, 'nixdock.config.json'), JSON.stringify({ store: { type: 'dir', path: join(REPO, 'examples', 'store') }, images: [{ name: 'hello', contents: [HELLO] }] }));
    const upload = await registry((req, res) => {
      if (req.method === 'POST' && req.url!.includes('/blobs/uploads/')) return send(res, 202, '', { location: `${plain.origin}/upload/1` });
      send(res, 404, '{"errors":[{"code":"MANIFEST_UNKNOWN"}]}');
    });
    try {
      const run = await nixdock(project, ['push', '--json', 'hello', `${upload.origin.slice('https://'.length)}/repo:t`]);
      assert.equal(run.status, 1, run.stderr);
      assert.match(run.stdout + run.stderr, /REGISTRY[\s\S]*sent nixdock from https to plain http/);
      assert.ok(upload.requests.some((r) => r.method === 'POST'), 'the push got as far as starting an upload');
      noRequestsTo(plain);
    } finally {
      await upload.close();
    }

    const realm = await serve('https', '127.0.0.2', tls, (req, res) => {
      if (req.headers.authorization?.startsWith('Bearer ')) return send(res, 404, '{"errors":[{"code":"MANIFEST_UNKNOWN"}]}');
      send(res, 401, '{}', { 'www-authenticate': `Bearer realm="${plain.origin}/token",service="fake"` });
    });
    try {
      const run = await nixdock(project, ['push', '--json', 'hello', `${realm.origin.slice('https://'.length)}/repo:t`]);
      assert.equal(run.status, 1, run.stderr);
      assert.match(run.stdout + run.stderr, /REGISTRY_AUTH[\s\S]*plain http/);
      noRequestsTo(plain);
    } finally {
      await realm.close();
    }
  });
});
