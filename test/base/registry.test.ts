import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { readBaseImage } from '../../src/base/read.js';
import { missingTools } from '../helpers/tools.js';
import { readAll, sha256, tarDirectory, writeOciLayout } from './fixtures.js';

const skip = missingTools([
  ['docker-registry', 'docker-registry'],
  ['skopeo', 'skopeo'],
  ['tar', 'tar'],
]);

let work: string;
let registry: ChildProcess | undefined;
let port: number;

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port: free } = server.address() as { port: number };
      server.close(() => resolve(free));
    });
  });
}

async function waitForRegistry(): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const ok = await fetch(`http://127.0.0.1:${port}/v2/`).then((r) => r.ok, () => false);
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('docker-registry did not start');
}

before(async () => {
  if (skip) return;
  work = mkdtempSync(join(tmpdir(), 'nixdock-base-registry-'));
  port = await freePort();
  // Debian's packaged config enables auth; this one is plain HTTP on loopback.
  writeFileSync(join(work, 'registry.yml'), `version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: ${work}/data\nhttp:\n  addr: 127.0.0.1:${port}\n`);
  registry = spawn('docker-registry', ['serve', join(work, 'registry.yml')], { stdio: 'ignore' });
  await waitForRegistry();
});

after(() => {
  registry?.kill();
  if (work) rmSync(work, { recursive: true, force: true });
});

test('fromImage from a registry (pinned by digest) is pulled into the cache and read like an OCI layout', { skip }, async () => {
  const root = join(work, 'rootfs');
  mkdirSync(join(root, 'etc'), { recursive: true });
  writeFileSync(join(root, 'etc', 'motd'), 'from the registry\n');
  const layers = [tarDirectory(root)];
  writeOciLayout(join(work, 'oci'), [{ tag: 'v1', layers, config: { Env: ['FROM=registry'] }, gzip: true }]);
  const ref = `127.0.0.1:${port}/base`;
  execFileSync('skopeo', ['--insecure-policy', 'copy', '-q', '--dest-tls-verify=false', '--preserve-digests', `oci:${join(work, 'oci')}:v1`, `docker://${ref}:v1`]);
  const digest = execFileSync('skopeo', ['inspect', '--tls-verify=false', '--format', '{{.Digest}}', `docker://${ref}:v1`], { encoding: 'utf8' }).trim();

  const image = await readBaseImage({ kind: 'registry', ref: `${ref}@${digest}`, allowTag: false }, { cacheDir: join(work, 'cache') });
  assert.deepEqual(image.config.config.Env, ['FROM=registry']);
  assert.equal(image.description, `registry:${ref}@${digest}`);
  assert.equal(image.layers[0]!.diffId, sha256(layers[0]!));
  assert.equal(await image.layers[0]!.size(), layers[0]!.length);
  assert.equal(sha256(await readAll(image.layers[0]!.open())), sha256(layers[0]!));
});
