/**
 * Inputs that used to end in INTERNAL or the wrong code (issue 11, point 11), each through the
 * real CLI as a user meets it: the code, the exit status, and the words that say what and where.
 * (DISK_FULL naming its path: test/incremental/disk-full.test.ts; a lowercase `bearer` challenge:
 * test/registry/hostile.test.ts.)
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import tar from 'tar-stream';
import { nixdock, nixdockArgv, REPO, type CliRun } from '../helpers/cli.js';
import { readAll, sha256 } from '../helpers/bytes.js';
import { writeOciLayout } from '../helpers/base-images.js';
import { fakeServer, json, tinyImage } from '../registry/fake-registry.js';

const HELLO = '/nix/store/lmyy4dl2bzjln51xcr9cjadm3x1nq9fm-hello-static';
/** A byte sequence that is not UTF-8, as a name on disk. */
const BAD_NAME = Buffer.from([0x62, 0x61, 0x64, 0x2d, 0xff, 0xfe, 0x2e, 0x74, 0x78, 0x74]); // bad-\xff\xfe.txt

let work: string;
before(() => {
  work = mkdtempSync(join(tmpdir(), 'nixdock-codes-'));
});
after(() => rmSync(work, { recursive: true, force: true }));

function fresh(name: string): string {
  const dir = join(work, name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'fixture', private: true }));
  return dir;
}

const env = () => ({ ...process.env, XDG_CACHE_HOME: join(work, 'xdg') });

interface JsonError { code: string; message: string; found?: string; expected?: string; location?: { file?: string } }
function jsonError(run: CliRun): JsonError {
  return (JSON.parse(run.stdout) as { error: JsonError }).error;
}

async function tarOf(entries: Array<{ name: string; body: string }>): Promise<Buffer> {
  const pack = tar.pack();
  const bytes = readAll(pack as unknown as NodeJS.ReadableStream);
  for (const entry of entries) pack.entry({ name: entry.name, size: entry.body.length }, entry.body);
  pack.finalize();
  return bytes;
}

describe('a file name that is not UTF-8', () => {
  /** The example dir store (examples/store) with BAD_NAME under hello's share/, or in a local contents dir. */
  function project(where: 'store' | 'contents'): string {
    const dir = fresh(`utf8-${where}`);
    cpSync(join(REPO, 'examples', 'store'), join(dir, 'store'), { recursive: true });
    const parent = where === 'store' ? join(dir, 'store', HELLO.slice('/nix/store/'.length), 'share') : join(dir, 'rootfs', 'etc');
    mkdirSync(Buffer.from(parent), { recursive: true });
    writeFileSync(Buffer.concat([Buffer.from(`${parent}/`), BAD_NAME]), 'x');
    const contents = where === 'store' ? [HELLO] : [HELLO, './rootfs'];
    writeFileSync(join(dir, 'nixdock.config.json'), JSON.stringify({ store: { type: 'dir', path: 'store' }, images: [{ name: 'hello', contents }] }));
    return dir;
  }

  for (const where of ['store', 'contents'] as const) {
    test(`in a ${where === 'store' ? 'dir store path' : 'local contents dir'}: INPUT_INVALID (exit 2) naming the path with the bytes spelled out, nothing written`, () => {
      const dir = project(where);
      const run = nixdock(dir, ['build', '--json'], env());
      assert.equal(run.status, 2, run.stderr);
      const error = jsonError(run);
      assert.equal(error.code, 'INPUT_INVALID', error.message);
      assert.match(error.message, /bad-\\xff\\xfe\.txt is not valid UTF-8/);
      assert.ok(error.location?.file?.startsWith(dir), JSON.stringify(error.location));
      assert.ok(error.location?.file?.endsWith('bad-\\xff\\xfe.txt'));
      assert.equal(existsSync(join(dir, 'out', 'oci', 'index.json')), false);
    });
  }
});

describe('base images that are broken', () => {
  let layout: string;
  let good: Buffer;
  before(async () => {
    layout = join(work, 'layout');
    good = await tarOf([{ name: 'etc/hello', body: 'hi' }]);
    const other = await tarOf([{ name: 'etc/hello', body: 'ho' }]);
    const written = writeOciLayout(layout, [
      { tag: 'not-a-tar', layers: [Buffer.alloc(2048, 'x')], config: {} },
      { tag: 'wrong-diff-id', layers: [good], config: {}, diffIds: [sha256(other)] },
      { tag: 'swapped-blob', layers: [await tarOf([{ name: 'etc/swapped', body: 'hi' }])], config: {} },
    ]);
    // The blob file now holds other bytes than its name (a broken copy, a tampered layout).
    const swapped = written.get('swapped-blob')!.layerDigests[0]!;
    writeFileSync(join(layout, 'blobs', 'sha256', swapped.slice(7)), other);
  });

  test('export of a layer that is not a tar: INPUT_INVALID (exit 2) naming the layer, as build says, and no output file', () => {
    const dir = fresh('export-not-tar');
    const run = nixdock(dir, ['export', '--json', `oci:${layout}:not-a-tar`, 'out.tar'], env());
    assert.equal(run.status, 2, run.stderr);
    const error = jsonError(run);
    assert.equal(error.code, 'INPUT_INVALID');
    assert.match(error.message, /layer 1\/1 \(sha256:[0-9a-f]{64}\) of oci:.* is not a readable tar archive/);
    assert.equal(existsSync(join(dir, 'out.tar')), false);
  });

  test('a layer whose bytes do not match its diff_id: DIGEST_MISMATCH (exit 1) saying so, with expected and found digests — export, inspect and build', () => {
    const dir = fresh('diff-id');
    writeFileSync(join(dir, 'nixdock.config.json'), JSON.stringify({ store: { type: 'dir', path: join(REPO, 'examples', 'store') }, images: [{ name: 'app', contents: [HELLO], fromImage: `oci:${layout}:wrong-diff-id` }] }));
    for (const args of [['export', `oci:${layout}:wrong-diff-id`, 'out.tar'], ['inspect', `oci:${layout}:wrong-diff-id`], ['build']]) {
      const run = nixdock(dir, [...args, '--json'], env());
      assert.equal(run.status, 1, `${args[0]}: ${run.stderr}`);
      const error = jsonError(run);
      assert.equal(error.code, 'DIGEST_MISMATCH', `${args[0]}: ${error.message}`);
      assert.match(error.message, /layer 1\/1 .* do not match its diff_id/, args[0]);
      assert.match(error.expected ?? '', /^sha256:[0-9a-f]{64}$/);
      assert.equal(error.found, sha256(good), `${args[0]}: found is the digest of the bytes actually there`);
      assert.notEqual(error.found, error.expected);
    }
    assert.equal(existsSync(join(dir, 'out.tar')), false);
  });

  test('a layer blob whose bytes do not match its name: DIGEST_MISMATCH naming the blob digest expected and the one found', () => {
    const dir = fresh('blob-digest');
    const run = nixdock(dir, ['export', '--json', `oci:${layout}:swapped-blob`, 'out.tar'], env());
    assert.equal(run.status, 1, run.stderr);
    const error = jsonError(run);
    assert.equal(error.code, 'DIGEST_MISMATCH');
    assert.match(error.message, /do not match its blob digest/);
    assert.match(error.expected ?? '', /^sha256:[0-9a-f]{64}$/);
    assert.ok(error.found && error.found !== error.expected);
  });
});

describe('an OCI layout whose index.json points at an index that points at an index', () => {
  /** index.json → index → … (depth indexes in all) → the manifest of one image with one layer. */
  async function nestedLayout(name: string, depth: number): Promise<string> {
    const dir = join(work, name);
    writeOciLayout(dir, [{ tag: 'inner', layers: [await tarOf([{ name: 'etc/nested', body: 'deep' }])], config: {} }]);
    const index = JSON.parse(readFileSync(join(dir, 'index.json'), 'utf8')) as { manifests: Array<Record<string, unknown>> };
    let entry: Record<string, unknown> = { ...index.manifests[0]!, annotations: undefined, platform: { os: 'linux', architecture: 'amd64' } };
    for (let i = 0; i < depth; i++) {
      const bytes = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [entry] }));
      writeFileSync(join(dir, 'blobs', 'sha256', sha256(bytes).slice(7)), bytes);
      entry = { mediaType: 'application/vnd.oci.image.index.v1+json', digest: sha256(bytes), size: bytes.length };
    }
    writeFileSync(join(dir, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [{ ...entry, annotations: { 'org.opencontainers.image.ref.name': 'outer' } }] }));
    return dir;
  }

  test('two levels of index are followed to the image: inspect and export work', async () => {
    const layout = await nestedLayout('nested-2', 2);
    const dir = fresh('nested-2-run');
    const inspect = nixdock(dir, ['inspect', '--json', `oci:${layout}:outer`], env());
    assert.equal(inspect.status, 0, inspect.stderr);
    const exported = nixdock(dir, ['export', `oci:${layout}:outer`, 'out.tar'], env());
    assert.equal(exported.status, 0, exported.stderr);
    assert.ok(readFileSync(join(dir, 'out.tar')).includes('deep'));
  });

  test('indexes nested deeper than anyone writes them are reported as that (INPUT_INVALID), not as a bad config', async () => {
    const layout = await nestedLayout('nested-6', 6);
    const run = nixdock(fresh('nested-6-run'), ['inspect', '--json', `oci:${layout}:outer`], env());
    assert.equal(run.status, 2, run.stderr);
    const error = jsonError(run);
    assert.equal(error.code, 'INPUT_INVALID');
    assert.match(error.message, /image indexes nested more than 4 deep/);
    assert.doesNotMatch(error.message, /config/);
  });
});

/** `nixdock ARGS` without blocking this process (the fake registry answers from it). */
function nixdockAsync(cwd: string, args: string[]): Promise<CliRun> {
  const child = spawn(process.execPath, nixdockArgv(args), { cwd, env: env(), stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d));
  child.stderr.on('data', (d: Buffer) => (stderr += d));
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (status) => resolve({ status, stdout, stderr }));
  });
}

describe('a registry that sends something other than JSON', () => {
  test('a manifest that is an HTML page, or a config that is not JSON: nixdock pull fails with REGISTRY (exit 1), caches nothing', async () => {
    const page = Buffer.from('<html><body>Please log in</body></html>');
    const image = tinyImage();
    const badConfig = Buffer.from('{"architecture": "amd64", "rootfs": ');
    const manifest = Buffer.from(JSON.stringify({
      ...(JSON.parse(image.manifest.toString()) as object),
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(badConfig), size: badConfig.length },
    }));
    const registry = await fakeServer((req, res) => {
      if (req.path === '/v2/') return json(res, 200, {});
      if (req.path.startsWith('/v2/page/manifests/')) return void res.writeHead(200, { 'content-type': 'text/html' }).end(page);
      if (req.path.startsWith('/v2/img/manifests/')) return void res.writeHead(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json' }).end(manifest);
      const digest = req.path.split('/blobs/')[1];
      const blob = digest === sha256(badConfig) ? badConfig : image.blobs.get(digest ?? '');
      res.writeHead(blob ? 200 : 404).end(blob);
    });
    try {
      for (const ref of [`${registry.host}/page@${sha256(page)}`, `${registry.host}/img@${sha256(manifest)}`]) {
        const dir = fresh(`registry-json-${ref.includes('page') ? 'page' : 'config'}`);
        writeFileSync(join(dir, 'nixdock.config.json'), JSON.stringify({ images: [] }));
        const run = await nixdockAsync(dir, ['pull', '--json', ref]);
        assert.equal(run.status, 1, run.stderr);
        const error = jsonError(run);
        assert.equal(error.code, 'REGISTRY', error.message);
        assert.match(error.message, /The registry sent the (manifest|image config) of .* that is not a JSON object/);
        assert.doesNotMatch(run.stderr, /Please log in|Unexpected token|SyntaxError/);
        assert.equal(existsSync(join(dir, '.nixdock', 'pulled', 'blobs')), false, 'nothing was cached');
      }
    } finally {
      await registry.stop();
    }
  });
});
