/**
 * export of layers whose entry names use `..` across layers: names are resolved lexically before
 * entries and whiteouts are placed, and only normalised names are written, as podman export does.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import tar from 'tar-stream';
import { NixdockError } from '../../src/errors.js';
import { exportImage } from '../../src/export.js';
import { podman } from '../helpers/podman.js';
import { hasTool } from '../helpers/tools.js';
import { writeOciLayout } from '../helpers/base-images.js';
import { readAll } from '../helpers/bytes.js';

type Entry = { name: string; type?: 'file' | 'directory' | 'symlink' | 'link'; linkname?: string; content?: string };

/** A layer tar with exactly these headers (names as given: tar(1) would normalise them). */
async function layerTar(entries: Entry[]): Promise<Buffer> {
  const pack = tar.pack();
  const bytes = readAll(pack as unknown as NodeJS.ReadableStream);
  for (const e of entries) {
    const type = e.type ?? 'file';
    const content = Buffer.from(e.content ?? '');
    pack.entry({ name: e.name, type, linkname: e.linkname, mode: type === 'directory' ? 0o755 : 0o644, size: type === 'file' ? content.length : 0, mtime: new Date(1000) }, type === 'file' ? content : '');
  }
  pack.finalize();
  return bytes;
}

async function exportedNames(layers: Buffer[]): Promise<string[]> {
  const out = new PassThrough();
  const bytes = readAll(out);
  await exportImage(layers.map((b) => ({ open: () => Readable.from([b]) })), out);
  const names: string[] = [];
  const extract = tar.extract();
  Readable.from([await bytes]).pipe(extract);
  for await (const entry of extract) {
    names.push(entry.header.name);
    entry.resume();
  }
  return names;
}

const HOSTILE: Entry[][] = [
  [{ name: 'b', type: 'symlink', linkname: '/somewhere' }, { name: 'secret', content: 'top secret' }, { name: 'data/f', content: 'f' }],
  [
    { name: 'a/', type: 'directory' },
    { name: 'a/../b/PWNED', content: 'pwned' },
    { name: 'a/../.wh.secret' },
    { name: 'a/./../data/../data/g', content: 'g' },
    { name: 'a/../data/h', type: 'link', linkname: 'a/../data/f' },
  ],
];

describe('export normalises names across layers', () => {
  let work: string;
  let layers: Buffer[];
  before(async () => {
    // podman names an oci: image after its path, which must be lower case
    // (and whose runroot must be under 50 characters)
    work = join(tmpdir(), `nd-exp-${randomBytes(4).toString('hex')}`);
    mkdirSync(work);
    layers = await Promise.all(HOSTILE.map(layerTar));
  });
  after(() => rmSync(work, { recursive: true, force: true }));

  test('a/../b/PWNED becomes b/PWNED, a/../.wh.secret deletes secret, no name keeps a ..', async () => {
    const names = await exportedNames(layers);
    assert.ok(names.includes('b/PWNED'), names.join(' '));
    assert.ok(names.includes('data/g'));
    assert.ok(!names.includes('secret'), 'the whiteout through a/.. removed secret');
    assert.deepEqual(names.filter((n) => n.split('/').includes('..') || n.split('/').includes('.') || n.includes('.wh.')), []);
    assert.ok(!names.includes('b'), 'the symlink b is replaced by the directory its children need');
  });

  test('a layer that is not a tar is INPUT_INVALID naming the layer, not INTERNAL', async () => {
    await assert.rejects(exportedNames([layers[0]!, Buffer.alloc(1024, 'x')]), (err: NixdockError) => err.code === 'INPUT_INVALID' && /layer 2\/2 is not a readable tar/.test(err.message));
  });

  // Without the dangling symlink b, which podman's extractor follows inside the root and then
  // refuses ("open /b/PWNED: no such file or directory"): nixdock's export replaces it instead.
  test('podman export of the same names gives the same result', { skip: !hasTool('podman') && 'podman not installed (Debian package podman)' }, async () => {
    const layout = join(work, 'layout');
    const layers = await Promise.all([HOSTILE[0]!.filter((e) => e.name !== 'b'), HOSTILE[1]!].map(layerTar));
    writeOciLayout(layout, [{ tag: 'v1', layers, config: { Cmd: ['/x'] } }]);
    const store = join(work, 'p');
    podman(store, ['pull', '-q', `oci:${layout}:v1`]);
    const id = podman(store, ['create', '--runtime', '/usr/sbin/runc', `oci:${layout}:v1`]).trim().split('\n').at(-1)!;
    const tarFile = join(work, 'podman-export.tar');
    podman(store, ['export', '-o', tarFile, id]);
    const podmanNames = execFileSync('tar', ['-tf', tarFile], { encoding: 'utf8' })
      .split('\n')
      .filter(Boolean)
      .map((n) => n.replace(/^\.?\//, '').replace(/\/$/, ''));
    const ours = (await exportedNames(layers)).map((n) => n.replace(/\/$/, ''));
    for (const name of ['b/PWNED', 'data/f', 'data/g', 'data/h']) {
      assert.ok(podmanNames.includes(name), `podman has ${name}: ${podmanNames.join(' ')}`);
      assert.ok(ours.includes(name), `nixdock has ${name}`);
    }
    assert.equal(podmanNames.includes('secret'), false);
    assert.equal(ours.includes('secret'), false);
    execFileSync('podman', ['--root', join(store, 'root'), '--runroot', join(store, 'runroot'), '--storage-driver', 'vfs', 'rm', '-f', id], { stdio: 'ignore' });
  });
});
