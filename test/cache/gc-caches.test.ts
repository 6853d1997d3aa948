/**
 * `nixdock gc` covers every cache nixdock writes under cacheDir, not only the index and the
 * output layouts: decompressed base archives (base/archives), base layer sizes (base/sizes), the
 * pull cache (pulled/), and leftover work trees and staging dirs. The caches are filled by real
 * builds, an export and a pull (from a registry served by this process), aged by setting their
 * mtimes back, collected, and the next build still works — with the registry gone.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { after, before, test } from 'node:test';
import tar from 'tar-stream';
import { nixdockArgv, REPO, type CliRun } from '../helpers/cli.js';
import { NIX_ENV } from '../helpers/nix.js';
import { gzipN, hybridDockerArchive, writeOciLayout } from '../helpers/base-images.js';
import { readAll, sha256 } from '../helpers/bytes.js';
import { fakeServer, json, type FakeServer } from '../registry/fake-registry.js';

const HELLO = '/nix/store/lmyy4dl2bzjln51xcr9cjadm3x1nq9fm-hello-static';
const DAY = 24 * 60 * 60;

let work: string;
let project: string;
let registry: FakeServer;
let used: string;
let unused: string;
let exportedLayout: string;

async function layerTar(name: string): Promise<Buffer> {
  const pack = tar.pack();
  const bytes = readAll(pack as unknown as NodeJS.ReadableStream);
  pack.entry({ name: `etc/${name}`, size: name.length }, name);
  pack.finalize();
  return bytes;
}

/** One image as a registry serves it: manifest, config, one gzip layer (so reading it records its size in base/sizes). */
async function registryImage(name: string): Promise<{ manifest: Buffer; blobs: Map<string, Buffer> }> {
  const tarBytes = await layerTar(name);
  const layer = gzipN(tarBytes);
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: [sha256(tarBytes)] }, history: [{ created_by: name }] }));
  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: sha256(layer), size: layer.length }],
  }));
  return { manifest, blobs: new Map([[sha256(config), config], [sha256(layer), layer], [sha256(manifest), manifest]]) };
}

/** A gzip docker-archive (so reading it fills base/archives) with one layer holding etc/NAME. */
async function gzipArchive(name: string): Promise<string> {
  const dir = join(work, `archive-${name}`);
  hybridDockerArchive(dir, [await layerTar(name)], {}, `${dir}.tar`);
  const path = join(project, `${name}.tar.gz`);
  writeFileSync(path, gzipN(readFileSync(`${dir}.tar`)));
  return path;
}

function run(args: string[]): Promise<CliRun> {
  const child = spawn(process.execPath, nixdockArgv(args), { cwd: project, env: { ...NIX_ENV, XDG_CACHE_HOME: join(work, 'xdg') }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d));
  child.stderr.on('data', (d: Buffer) => (stderr += d));
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (status) => resolve({ status, stdout, stderr }));
  });
}

async function ok(args: string[]): Promise<CliRun> {
  const result = await run(args);
  assert.equal(result.status, 0, `nixdock ${args.join(' ')}: ${result.stderr}`);
  return result;
}

/** Every file under cacheDir's caches, relative to cacheDir. */
function cacheFiles(): string[] {
  const cache = join(project, '.nixdock');
  const out: string[] = [];
  const walk = (dir: string): void => {
    if (!existsSync(dir)) return;
    for (const name of readdirSync(dir)) {
      const path = join(dir, name);
      if (statSync(path).isDirectory()) walk(path);
      else out.push(relative(cache, path));
    }
  };
  for (const sub of ['base', 'pulled', 'tmp']) walk(join(cache, sub));
  for (const name of readdirSync(cache)) if (name.startsWith('index.sqlite.')) out.push(name);
  return out.sort();
}

/** Sets every cache file's (and directory's) mtime `days` back: as if nothing used them since. */
function age(days: number, ...dirs: string[]): void {
  const when = Date.now() / 1000 - days * DAY;
  const walk = (path: string): void => {
    if (!existsSync(path)) return;
    if (statSync(path).isDirectory()) for (const name of readdirSync(path)) walk(join(path, name));
    utimesSync(path, when, when);
  };
  for (const dir of dirs) walk(join(project, '.nixdock', dir));
}

before(async () => {
  work = mkdtempSync(join(tmpdir(), 'nixdock-gc-caches-'));
  project = join(work, 'project');
  mkdirSync(project);
  const images = { used: await registryImage('used-by-a-build'), unused: await registryImage('pulled-only') };
  const blobs = new Map([...images.used.blobs, ...images.unused.blobs]);
  registry = await fakeServer((req, res) => {
    if (req.path === '/v2/') return json(res, 200, {});
    const digest = decodeURIComponent(req.path.split(/\/(?:blobs|manifests)\//)[1] ?? '');
    const blob = blobs.get(digest);
    if (!blob) return json(res, 404, { errors: [{ code: 'BLOB_UNKNOWN' }] });
    const type = req.path.includes('/manifests/') ? { 'content-type': 'application/vnd.oci.image.manifest.v1+json' } : {};
    res.writeHead(200, { ...type, 'content-length': String(blob.length) }).end(blob);
  });
  used = `${registry.host}/base@${sha256(images.used.manifest)}`;
  unused = `${registry.host}/other@${sha256(images.unused.manifest)}`;
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'fixture', private: true }));
  await gzipArchive('archive-used');
  await gzipArchive('archive-exported');
  exportedLayout = join(work, 'layout-exported');
  writeOciLayout(exportedLayout, [{ tag: 'v1', layers: [await layerTar('oci-exported')], config: {}, gzip: true }]);
  writeFileSync(join(project, 'nixdock.config.json'), JSON.stringify({
    store: { type: 'dir', path: join(REPO, 'examples', 'store') },
    gc: { keepBuilds: 1 },
    images: [
      { name: 'from-archive', contents: [HELLO], fromImage: 'docker-archive:./archive-used.tar.gz' },
      { name: 'from-registry', contents: [HELLO], fromImage: used },
    ],
  }));
});
after(async () => {
  await registry.stop().catch(() => undefined);
  rmSync(work, { recursive: true, force: true });
});

test('gc removes cached base files no kept build uses once unused for gc.cacheDays, keeps the rest, and the next build works offline', async () => {
  await ok(['build']);
  await ok(['export', 'docker-archive:./archive-exported.tar.gz', join(work, 'flat.tar')]);
  await ok(['export', `oci:${exportedLayout}:v1`, join(work, 'flat-oci.tar')]);
  await ok(['pull', unused]);
  // Leftovers of killed commands: a work tree and a pull's staging dir.
  mkdirSync(join(project, '.nixdock', 'tmp', 'nixdock-customisation-killed', 'etc'), { recursive: true });
  writeFileSync(join(project, '.nixdock', 'tmp', 'nixdock-customisation-killed', 'etc', 'passwd'), 'root:x:0:0::/root:/bin/sh\n');
  mkdirSync(join(project, '.nixdock', 'pulled', '.staging-killed'));
  writeFileSync(join(project, '.nixdock', 'pulled', '.staging-killed', 'blob'), 'half');
  const filled = cacheFiles();
  assert.equal(filled.filter((f) => f.startsWith('base/archives/')).length, 2, filled.join('\n'));
  assert.equal(filled.filter((f) => f.startsWith('base/sizes/')).length, 2, filled.join('\n'));
  const pulledIndex = () => (JSON.parse(readFileSync(join(project, '.nixdock', 'pulled', 'index.json'), 'utf8')) as { manifests: Array<{ digest: string }> }).manifests.map((m) => m.digest).sort();
  assert.deepEqual(pulledIndex(), [used.split('@')[1], unused.split('@')[1]].sort());

  // Everything was used just now (and the leftovers are new): gc removes no cached file.
  const fresh = JSON.parse((await ok(['gc', '--json'])).stdout) as { caches: { files: unknown[] } };
  assert.deepEqual(fresh.caches.files, []);
  assert.deepEqual(cacheFiles(), filled);

  // Damaged indexes moved aside long ago (one by a newer nixdock, which stays).
  for (const name of ['index.sqlite.corrupt-2026-01-01T00-00-00-000Z', 'index.sqlite.corrupt-2026-01-01T00-00-00-000Z-wal', 'index.sqlite.newer-99']) {
    writeFileSync(join(project, '.nixdock', name), 'damaged');
    utimesSync(join(project, '.nixdock', name), Date.now() / 1000 - 60 * DAY, Date.now() / 1000 - 60 * DAY);
  }
  const filledAged = cacheFiles();
  // A month later, nothing used since.
  age(30, 'base', 'pulled', 'tmp');
  const dry = JSON.parse((await ok(['gc', '--dry-run', '--json'])).stdout) as { caches: { files: Array<{ path: string; kind: string }>; bytes: number } };
  assert.deepEqual(cacheFiles(), filledAged, '--dry-run removes nothing');
  const report = JSON.parse((await ok(['gc', '--json'])).stdout) as typeof dry;
  assert.deepEqual(report.caches.files.map((f) => f.path).sort(), dry.caches.files.map((f) => f.path).sort(), 'the dry run said what would go');
  const gone = filledAged.filter((f) => !cacheFiles().includes(f));
  const removed = report.caches.files.map((f) => relative(join(project, '.nixdock'), f.path));

  // Gone: the archive and the layout only `export` used (its layer's size), the image only `pull` fetched, the leftovers.
  const archives = filled.filter((f) => f.startsWith('base/archives/'));
  assert.equal(gone.filter((f) => f.startsWith('base/archives/')).length, 1);
  assert.equal(gone.filter((f) => f.startsWith('base/sizes/')).length, 1, gone.join('\n'));
  assert.deepEqual(pulledIndex(), [used.split('@')[1]], 'the unused pulled image left the pull cache index');
  assert.equal(gone.filter((f) => f.startsWith('pulled/blobs/')).length, 3, 'its manifest, config and layer');
  assert.ok(gone.includes('tmp/nixdock-customisation-killed/etc/passwd') && gone.includes('pulled/.staging-killed/blob'), gone.join('\n'));
  assert.ok(removed.includes('tmp/nixdock-customisation-killed') && removed.includes('pulled/.staging-killed'), removed.join('\n'));
  assert.ok(report.caches.bytes > 0);
  assert.deepEqual(gone.filter((f) => f.startsWith('index.sqlite.')).sort(), ['index.sqlite.corrupt-2026-01-01T00-00-00-000Z', 'index.sqlite.corrupt-2026-01-01T00-00-00-000Z-wal']);
  assert.ok(cacheFiles().includes('index.sqlite.newer-99'), 'an index of a newer nixdock stays');

  // Kept: what the kept builds use, however old.
  const left = cacheFiles();
  assert.equal(left.filter((f) => f.startsWith('base/archives/')).length, 1);
  assert.equal(left.filter((f) => f.startsWith('base/sizes/')).length, 1, 'the size of the kept pulled layer');
  assert.ok(archives.some((f) => left.includes(f)));
  assert.equal(left.filter((f) => f.startsWith('pulled/blobs/')).length, 3, 'the base image a kept build uses: manifest, config, layer');

  // The next build works from what is left, without the registry.
  await registry.stop();
  const rebuilt = await ok(['build', '--json']);
  assert.match(rebuilt.stdout, /"ok": ?true/);
  const afterRebuild = cacheFiles();
  assert.deepEqual(afterRebuild.filter((f) => f.startsWith('pulled/')), left.filter((f) => f.startsWith('pulled/')), 'nothing was fetched again');
  // And the rebuild marked what it used: a gc right after removes nothing more.
  const again = JSON.parse((await ok(['gc', '--json'])).stdout) as typeof dry;
  assert.deepEqual(again.caches.files, []);
});

test('gc.cacheDays must be a positive number of days', async () => {
  const config = JSON.parse(readFileSync(join(project, 'nixdock.config.json'), 'utf8')) as { gc: Record<string, unknown> };
  writeFileSync(join(project, 'nixdock.config.json'), JSON.stringify({ ...config, gc: { ...config.gc, cacheDays: 0 } }));
  const result = await run(['gc']);
  assert.equal(result.status, 2, result.stderr);
  assert.match(result.stderr, /CONFIG_INVALID[\s\S]*gc\.cacheDays/);
});
