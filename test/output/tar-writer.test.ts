/**
 * The archive container as the user receives it: the same bytes whichever way they are written
 * (a file, a pipe switched to blocking writes, a non-blocking pipe, any Writable), readable by
 * GNU tar and Python's tarfile, and no complete-looking archive when a layer blob is wrong.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { appendFileSync, copyFileSync, createReadStream, readFileSync, readdirSync, truncateSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { PassThrough } from 'node:stream';
import { test, type TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { NixdockError } from '../../src/errors.js';
import { writeDockerArchive, writeDockerArchiveFile } from '../../src/formats/docker-archive/write.js';
import { missingTools } from '../helpers/tools.js';
import { archiveLayers, childImage } from './archive-fixtures.js';
import { helloClosure } from '../helpers/nix.js';
import { tarLayerSource } from './fixtures.js';
import { tempDir } from '../helpers/tmp.js';

const NIX = ['nix-build', 'nix-bin'] as [string, string];
const CHILD = fileURLToPath(new URL('./archive-child.ts', import.meta.url));
const TSX = import.meta.resolve('tsx');

/** The hello closure as layer tar files in a temp dir (each well over a pipe's 64 KiB buffer for busybox). */
function layerFiles(t: TestContext): string[] {
  const dir = tempDir(t, 'nixdock-tar-writer-');
  return helloClosure().paths.map((path) => {
    tarLayerSource(path, dir);
    return join(dir, `${basename(path)}.tar`);
  });
}

async function collect(write: (out: PassThrough) => Promise<void>): Promise<Buffer> {
  const out = new PassThrough();
  const chunks: Buffer[] = [];
  out.on('data', (chunk: Buffer) => chunks.push(chunk));
  await write(out);
  return Buffer.concat(chunks);
}

/** The archive a child process writes to its stdout pipe; the reader starts late, so the pipe fills up. */
async function fromChildStdout(mode: string, files: string[]): Promise<Buffer> {
  const child = spawn(process.execPath, ['--import', TSX, CHILD, mode, ...files], { stdio: ['ignore', 'pipe', 'pipe'] });
  const chunks: Buffer[] = [];
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d));
  child.stdout.pause();
  child.stdout.on('data', (chunk: Buffer) => chunks.push(chunk));
  setTimeout(() => child.stdout.resume(), 200);
  const status = await new Promise<number | null>((resolve, reject) => child.once('error', reject).once('close', resolve));
  assert.equal(status, 0, stderr);
  return Buffer.concat(chunks);
}

test('an archive is the same bytes into a file, a blocking or non-blocking pipe and a Writable, and tar tools read it', { skip: missingTools([NIX]) }, async (t) => {
  const files = layerFiles(t);
  const image = childImage(archiveLayers(files, true));
  const path = join(tempDir(t), 'hello.tar');
  await writeDockerArchiveFile([image], path);
  const archive = readFileSync(path);

  assert.ok(archive.equals(await collect((out) => writeDockerArchive([image], out))), 'Writable, verified blobs');
  assert.ok(archive.equals(await collect((out) => writeDockerArchive([childImage(archiveLayers(files, false))], out))), 'Writable, blobs hashed on the way');
  assert.ok(archive.equals(await fromChildStdout('blocking', files)), 'stdout pipe with blocking writes');
  assert.ok(archive.equals(await fromChildStdout('no-blocking-switch', files)), 'non-blocking stdout pipe');

  assert.equal(archive.length % 10240, 0, 'padded to whole tar records');
  const listing = execFileSync('tar', ['-tvf', path], { encoding: 'utf8' }).trim().split('\n');
  assert.match(listing[0]!, /^drwxr-xr-x 0\/0 +0 1970-01-01 00:00 blobs\/$/);
  const layerLine = listing.find((line) => line.endsWith(image.layers[0]!.diffId.slice(7)))!;
  assert.match(layerLine, new RegExp(`^-rw-r--r-- 0/0 +${image.layers[0]!.size} `));
  const python = 'import sys, tarfile\nfor m in tarfile.open(sys.argv[1]): print(m.name, m.size, oct(m.mode), m.mtime, m.uname == "")';
  const members = execFileSync('python3', ['-c', python, path], { encoding: 'utf8' }).trim().split('\n');
  assert.equal(members.at(-1), `manifest.json ${members.at(-1)!.split(' ')[1]} 0o644 0 True`, 'manifest.json last');
  for (const layer of image.layers) assert.ok(members.includes(`blobs/sha256/${layer.diffId.slice(7)} ${layer.size} 0o644 0 True`));
});

test('a layout blob of the wrong length fails the archive: no file, no complete stream', { skip: missingTools([NIX]) }, async (t) => {
  const files = layerFiles(t);
  const dir = tempDir(t);
  const [shorter, longer] = [join(dir, 'shorter.tar'), join(dir, 'longer.tar')];
  copyFileSync(files[0]!, shorter);
  truncateSync(shorter, 10_000);
  copyFileSync(files[0]!, longer);
  appendFileSync(longer, 'x');
  const target = join(dir, 'hello.tar');
  writeFileSync(target, 'the previous archive');

  for (const changed of [shorter, longer]) {
    const [layer] = archiveLayers([files[0]!], true);
    const image = childImage([{ ...layer!, source: { ...layer!.source, tarFile: changed, open: () => createReadStream(changed) } }]);
    const isSizeError = (err: NixdockError) => err.code === 'LAYER_BUILD' && err.expected === `${layer!.size} bytes`;
    await assert.rejects(writeDockerArchiveFile([image], target), isSizeError, changed);
    const received = await collect((out) => writeDockerArchive([image], out).catch(() => undefined));
    assert.ok(!received.includes('manifest.json'), 'the stream ends without manifest.json');
  }
  assert.equal(readFileSync(target, 'utf8'), 'the previous archive');
  assert.deepEqual(readdirSync(dir).sort(), ['hello.tar', 'longer.tar', 'shorter.tar']);
});

test('an aborted archive file is not written', { skip: missingTools([NIX]) }, async (t) => {
  const image = childImage(archiveLayers(layerFiles(t), true));
  const dir = tempDir(t);
  const controller = new AbortController();
  controller.abort(new Error('stopped by the user'));
  await assert.rejects(writeDockerArchiveFile([image], join(dir, 'hello.tar'), controller.signal), /stopped by the user/);
  assert.deepEqual(readdirSync(dir), []);
});
