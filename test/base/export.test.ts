import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createWriteStream, linkSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { Command } from 'commander';
import { exportCommand, register } from '../../src/commands/export.js';
import { exportImage } from '../../src/export.js';
import { missingTools } from '../helpers/tools.js';
import { tarDirectory, writeOciLayout } from '../helpers/base-images.js';
import { sha256 } from '../helpers/bytes.js';

/** Writes `files` (path → content, or null for a directory) under a fresh directory. */
function tree(root: string, files: Record<string, string | null>): string {
  for (const [path, content] of Object.entries(files)) {
    const full = join(root, path);
    if (content === null) mkdirSync(full, { recursive: true });
    else {
      mkdirSync(join(full, '..'), { recursive: true });
      writeFileSync(full, content);
    }
  }
  return root;
}

/** Every path under `dir` (dirs with a trailing slash) → file content, as a user would list it. */
function listTree(dir: string, prefix = ''): Record<string, string> {
  const out: Record<string, string> = {};
  for (const entry of readdirSync(join(dir, prefix), { withFileTypes: true })) {
    const path = prefix ? `${prefix}/${entry.name}` : entry.name;
    if (entry.isDirectory()) Object.assign(out, { [`${path}/`]: '' }, listTree(dir, path));
    else out[path] = readFileSync(join(dir, path), 'utf8');
  }
  return out;
}

describe('exportImage', { skip: missingTools([['tar', 'tar']]) }, () => {
  let work: string;
  let layers: Buffer[];

  before(() => {
    work = mkdtempSync(join(tmpdir(), 'nixdock-export-'));
    const l1 = tree(join(work, 'l1'), {
      'etc/a': 'a1', 'etc/b': 'b1', 'opt/dir/old1': 'o1', 'opt/dir/sub/old2': 'o2',
      'bin/x': 'x1', 'keep/inner': 'gone', 'data/h1': 'shared',
    });
    linkSync(join(l1, 'data/h1'), join(l1, 'data/h2'));
    // Whiteouts are plain empty files named .wh.* in the layer tar (OCI image spec).
    const l2 = tree(join(work, 'l2'), {
      'etc/.wh.b': '', 'opt/dir/.wh..wh..opq': '', 'opt/dir/new': 'n2', 'bin/x': 'x2', 'data/.wh.h1': '',
    });
    const l3 = tree(join(work, 'l3'), { 'etc/c': 'c3', keep: 'now a file' });
    chmodSync(join(l3, 'etc'), 0o700);
    layers = [tarDirectory(l1), tarDirectory(l2), tarDirectory(l3)];
  });
  after(() => rmSync(work, { recursive: true, force: true }));

  const asLayers = () => layers.map((bytes) => ({ open: () => Readable.from([bytes]) }));

  async function exportTo(name: string): Promise<string> {
    const out = join(work, name);
    await exportImage(asLayers(), createWriteStream(out));
    return out;
  }

  test('flattens three layers: overrides, whiteouts and opaque directories applied', async () => {
    const out = await exportTo('rootfs.tar');
    const root = join(work, 'extracted');
    mkdirSync(root);
    execFileSync('tar', ['-xf', out, '-C', root]);
    assert.deepEqual(listTree(root), {
      'bin/': '', 'bin/x': 'x2',
      'data/': '', 'data/h2': 'shared',
      'etc/': '', 'etc/a': 'a1', 'etc/c': 'c3',
      keep: 'now a file',
      'opt/': '', 'opt/dir/': '', 'opt/dir/new': 'n2',
    });
  });

  test('each directory appears once, with its last metadata, before its children; no whiteout files', async () => {
    const listing = execFileSync('tar', ['-tvf', await exportTo('listing.tar')], { encoding: 'utf8' }).trim().split('\n');
    const names = listing.map((line) => line.split(/\s+/).at(-1)!);
    assert.equal(new Set(names).size, names.length, `duplicate entries in:\n${names.join('\n')}`);
    assert.ok(!names.some((n) => n.includes('.wh.')));
    assert.ok(names.indexOf('etc/') < names.indexOf('etc/a'));
    assert.match(listing.find((line) => line.endsWith(' etc/'))!, /^drwx------ /);
  });

  test('the same layers always give the same bytes', async () => {
    assert.equal(sha256(readFileSync(await exportTo('one.tar'))), sha256(readFileSync(await exportTo('two.tar'))));
  });

  test('a hard link whose target is unchanged stays a hard link', async () => {
    const out = join(work, 'links.tar');
    const dir = tree(join(work, 'links'), { 'a/file': 'same' });
    linkSync(join(dir, 'a/file'), join(dir, 'a/link'));
    await exportImage([{ open: () => Readable.from([tarDirectory(dir)]) }], createWriteStream(out));
    const listing = execFileSync('tar', ['-tvf', out], { encoding: 'utf8' });
    assert.match(listing, /a\/link link to a\/file/);
  });

  test('nixdock export oci:DIR:TAG writes the flattened tarball atomically', async () => {
    const layout = join(work, 'layout');
    writeOciLayout(layout, [{ tag: 'v1', layers, config: {}, gzip: false }]);
    const outDir = join(work, 'cli');
    mkdirSync(outDir);
    const result = await exportCommand(`oci:${layout}:v1`, join(outDir, 'rootfs.tar'), { cacheDir: join(work, 'cache') });
    assert.deepEqual(readdirSync(outDir), ['rootfs.tar'], 'only the output, no temp file left');
    assert.equal(result.layers, 3);
    assert.equal(sha256(readFileSync(result.path)), sha256(readFileSync(await exportTo('direct.tar'))));

    const program = new Command().exitOverride();
    register(program);
    await assert.rejects(program.parseAsync(['node', 'nixdock', 'export', `zip:${layout}`, join(outDir, 'x.tar')]), { code: 'INPUT_INVALID' });
    await assert.rejects(exportCommand(`oci:${layout}:nope`, join(outDir, 'y.tar'), { cacheDir: join(work, 'cache') }), { code: 'IMAGE_NOT_FOUND' });
    assert.deepEqual(readdirSync(outDir), ['rootfs.tar']);
  });
});
