import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { closeSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { once } from 'node:events';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, test } from 'node:test';
import { hashLayer } from '../../src/layer/hash.js';
import { storeLayerSource } from '../../src/layer/store-layer.js';
import { liveTarWorkers } from '../../src/tar/worker-pool.js';
import type { TarSettings } from '../../src/types.js';
import { missingTools } from '../helpers/tools.js';
import { edgePaths } from '../helpers/edge-paths.js';
import { tempDir } from '../helpers/tmp.js';
import { readAll, sha256 } from '../helpers/bytes.js';

const NEEDS = missingTools([['nix-build', 'nix-bin']]);
const DEFAULTS: TarSettings = { mtime: 1, uid: 0, gid: 0, uname: 'root', gname: 'root' };
const REPO = new URL('../..', import.meta.url).pathname;
/** tsx by absolute URL: the child runs a script outside the repository, where `tsx` does not resolve. */
const TSX = import.meta.resolve('tsx');

function edgeLayer() {
  const { tree, file, symlink } = edgePaths();
  return storeLayerSource({ paths: [tree, file, symlink], settings: DEFAULTS, storeDir: '/nix/store', physicalPath: (p) => p });
}

describe('store layer bytes come from a worker thread', { skip: NEEDS }, () => {
  test('a reader that stops early ends the worker, which was blocked waiting for the reader', async () => {
    const layer = edgeLayer();
    const stream = layer.open();
    const [first] = (await once(stream, 'data')) as [Buffer];
    assert.ok(first.length > 0);
    stream.pause();
    const whileStreaming = liveTarWorkers();
    assert.ok(whileStreaming >= 1, 'a worker writes the layer');
    stream.destroy();
    await once(stream, 'close');
    assert.equal(liveTarWorkers(), whileStreaming - 1, 'the streaming worker has exited, not gone back to the pool');
    // The pool still serves the next layer, with the same bytes as a fresh run.
    assert.equal((await hashLayer(layer)).diffId, sha256(await readAll(edgeLayer().open())));
  });

  // The chunks are hashed and written by a second worker when there is a core to spare, by the
  // reading worker itself otherwise: both ways, whatever this machine would choose.
  for (const [drain, workers] of [['thread', 2], ['inline', 1]] as const) {
    describe(`hashed and written ${drain === 'thread' ? 'by a second worker' : 'by the reading worker'}`, () => {
      beforeEach(() => (process.env.NIXDOCK_TAR_DRAIN = drain));
      afterEach(() => delete process.env.NIXDOCK_TAR_DRAIN);

      test('the bytes and digest are those of the stream', async (t) => {
        const layer = edgeLayer();
        const bytes = await readAll(layer.open());
        const file = join(tempDir(t, 'nixdock-layer-fd-'), 'layer.tar');
        const fd = openSync(file, 'w');
        try {
          assert.equal(await layer.writeToFd!(fd), sha256(bytes));
        } finally {
          closeSync(fd);
        }
        assert.ok(readFileSync(file).equals(bytes));
        assert.equal((await hashLayer(layer)).diffId, sha256(bytes), 'only hashed, no descriptor');
      });

      test('an abort signal stops a layer being written into a file descriptor, and its workers', async () => {
        const layer = edgeLayer();
        const controller = new AbortController();
        let whileWriting = 0;
        const onProgress = () => {
          whileWriting = liveTarWorkers();
          controller.abort();
        };
        await assert.rejects(layer.writeToFd!(undefined, { signal: controller.signal, onProgress }), { name: 'AbortError' });
        assert.ok(whileWriting >= workers, `${workers} worker(s) wrote the layer`);
        assert.equal(liveTarWorkers(), whileWriting - workers, 'the aborted layer\'s workers have exited');
      });

      test('a known digest is not computed again: the bytes are the same, only counted', async (t) => {
        const layer = edgeLayer();
        const diffId = sha256(await readAll(layer.open()));
        const file = join(tempDir(t, 'nixdock-layer-known-'), 'layer.tar');
        const fd = openSync(file, 'w');
        const claimed = `sha256:${'0'.repeat(64)}` as const;
        try {
          assert.equal(await layer.writeToFd!(fd, { knownDigest: claimed }), claimed, 'the claimed digest comes back unchecked');
        } finally {
          closeSync(fd);
        }
        assert.equal(sha256(readFileSync(file)), diffId);
      });
    });
  }

  test('an abort signal stops hashing the stream and the worker with it', async () => {
    const layer = edgeLayer();
    const controller = new AbortController();
    let closed: Promise<void> | undefined;
    let whileStreaming = 0;
    const source = {
      ...layer,
      writeToFd: undefined,
      open: () => {
        const stream = layer.open().once('data', () => {
          whileStreaming = liveTarWorkers();
          controller.abort();
        });
        closed = new Promise((resolve) => stream.once('close', resolve));
        return stream;
      },
    };
    await assert.rejects(hashLayer(source, controller.signal), { name: 'AbortError' });
    await closed;
    assert.equal(liveTarWorkers(), whileStreaming - 1, 'the aborted layer\'s worker has exited');
  });

  test('a stream its consumer drops without destroying it does not keep the process alive', (t) => {
    // As a pipe() source left behind by a failed pipeline: paused, never destroyed, its worker blocked on a full ring.
    const script = join(tempDir(t, 'nixdock-layer-dropped-'), 'drop.mjs');
    writeFileSync(script, `
      import { storeLayerSource } from ${JSON.stringify(join(REPO, 'src/layer/store-layer.ts'))};
      const stream = storeLayerSource({ paths: JSON.parse(process.argv[2]), settings: ${JSON.stringify(DEFAULTS)}, storeDir: '/nix/store', physicalPath: (p) => p }).open();
      stream.once('data', () => { stream.pause(); console.log('dropped'); });`);
    const { tree } = edgePaths();
    // The timeout only stops a hung child; a correct one exits as soon as its script is done.
    const child = spawnSync(process.execPath, ['--import', TSX, script, JSON.stringify([tree])], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(child.stdout.trim(), 'dropped', child.stderr);
    assert.equal(child.status, 0, 'the process exited on its own');
  });

  test('a small layer is tarred by a worker left idle by a big one, with the bytes it has tarred inline', async (t) => {
    const { file, symlink } = edgePaths();
    const small = storeLayerSource({ paths: [file, symlink], settings: DEFAULTS, storeDir: '/nix/store', physicalPath: (p) => p });
    const dir = tempDir(t, 'nixdock-layer-small-');
    const written = async (name: string) => {
      const fd = openSync(join(dir, name), 'w');
      try {
        return { digest: await small.writeToFd!(fd), bytes: readFileSync(join(dir, name)) };
      } finally {
        closeSync(fd);
      }
    };
    // A small layer's stream is always tarred on this thread.
    const inline = await readAll(small.open());
    await edgeLayer().writeToFd!(undefined);
    assert.ok(liveTarWorkers() >= 1, 'the big layer left a worker in the pool');
    const byWorker = await written('worker.tar');
    assert.equal(byWorker.digest, sha256(inline));
    assert.ok(byWorker.bytes.equals(inline));
  });

  test('layers streamed at the same time each get their own worker and their own bytes', async () => {
    const { tree, file } = edgePaths();
    const layerOf = (paths: string[]) => storeLayerSource({ paths, settings: DEFAULTS, storeDir: '/nix/store', physicalPath: (p) => p });
    const alone = [await readAll(layerOf([tree]).open()), await readAll(layerOf([file]).open())];
    const together = await Promise.all([readAll(layerOf([tree]).open()), readAll(layerOf([file]).open())]);
    assert.deepEqual(together.map(sha256), alone.map(sha256));
  });

  test('the compiled module (dist/, no tsx) finds its worker and writes the same bytes', async (t) => {
    const out = tempDir(t, 'nixdock-layer-dist-');
    const tsc = join(REPO, 'node_modules/typescript/bin/tsc');
    // The project's own strictness: narrowing differs without it, and the build compiles with it.
    const options = ['--outDir', out, '--rootDir', join(REPO, 'src'), '--module', 'nodenext', '--target', 'es2022', '--strict', '--skipLibCheck'];
    // The worker module is loaded by URL, not imported, so it is named as a root (tsconfig's `include` covers all of src/).
    const roots = ['src/layer/store-layer.ts', 'src/tar/worker.ts'].map((file) => join(REPO, file));
    execFileSync(process.execPath, [tsc, ...options, ...roots], { stdio: 'pipe' });
    writeFileSync(join(out, 'package.json'), '{"type":"module"}');
    writeFileSync(join(out, 'hash-layer.js'), `
      import { storeLayerSource } from ${JSON.stringify(join(out, 'layer/store-layer.js'))};
      import { createHash } from 'node:crypto';
      const hash = createHash('sha256');
      const paths = JSON.parse(process.argv[2]);
      for await (const chunk of storeLayerSource({ paths, settings: ${JSON.stringify(DEFAULTS)}, storeDir: '/nix/store', physicalPath: (p) => p }).open()) hash.update(chunk);
      console.log('sha256:' + hash.digest('hex'));`);
    const { tree, file, symlink } = edgePaths();
    // Plain node without the tsx loader, as users run dist/: the worker must be the compiled .js file.
    const env = { ...process.env, NODE_OPTIONS: '' };
    const digest = execFileSync(process.execPath, [join(out, 'hash-layer.js'), JSON.stringify([tree, file, symlink])], { encoding: 'utf8', env });
    assert.equal(digest.trim(), (await hashLayer(edgeLayer())).diffId);
  });
});
