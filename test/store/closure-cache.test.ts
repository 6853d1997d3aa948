/**
 * The closure cache against the real Nix store: a no-change rebuild gets its closure from the
 * layer index without running `nix path-info`, and a store path deleted and built again with other
 * bytes under the same name (a new inode and ctime) is asked of Nix again, never served stale.
 * Which nix commands ran is seen through a `nix` wrapper first on PATH that logs its arguments.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, createReadStream, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { test, type TestContext } from 'node:test';
import { extract } from 'tar-stream';
import type { BuildJsonImage } from '../../src/commands/build.js';
import { nixdock, nixdockJson } from '../helpers/cli.js';
import { tempProject } from '../helpers/project.js';
import { NIX_ENV, drv, helloApp, nixBuild } from '../helpers/nix.js';
import { missingTools } from '../helpers/tools.js';

const skip = missingTools([['nix', 'nix-bin'], ['nix-build', 'nix-bin'], ['nix-store', 'nix-bin']]);

/** A temp project with one image made of `contents`, a `nix` wrapper that logs to nix-calls.log, and files. */
function loggedNixProject(t: TestContext, contents: unknown[], files: Record<string, string> = {}) {
  const log = 'nix-calls.log';
  const realNix = execFileSync('sh', ['-c', 'command -v nix'], { encoding: 'utf8' }).trim();
  const { dir } = tempProject(t, {
    'nixdock.config.json': { formats: ['oci'], images: [{ name: 'app', contents }] },
    ...files,
    'bin/nix': `#!/bin/sh\necho "$*" >> ${log}\nexec ${realNix} "$@"\n`,
  });
  chmodSync(join(dir, 'bin/nix'), 0o755);
  const env = { PATH: `${join(dir, 'bin')}:${process.env.PATH}` };
  return {
    dir,
    /** `nixdock build --json` with the wrapper on PATH: the image, and the nix commands it ran. */
    build(): { image: BuildJsonImage; nixCalls: string[] } {
      rmSync(join(dir, log), { force: true });
      const image = nixdockJson(dir, ['build'], env).images[0]!;
      const nixCalls = existsSync(join(dir, log)) ? readFileSync(join(dir, log), 'utf8').trim().split('\n') : [];
      return { image, nixCalls };
    },
    run: () => nixdock(dir, ['build', '--json'], env),
  };
}

const pathInfoCalls = (calls: string[]) => calls.filter((call) => call.includes('path-info'));

/** The contents of `file` in the layer of the OCI layout that holds it. */
async function fileInImage(layout: string, image: BuildJsonImage, file: string): Promise<string | undefined> {
  let found: string | undefined;
  for (const layer of image.layers) {
    const reader = extract();
    reader.on('entry', (header, stream, next) => {
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: unknown) => void chunks.push(chunk as Buffer));
      stream.on('end', () => {
        if (header.name === file) found = Buffer.concat(chunks).toString('utf8');
        next();
      });
    });
    await pipeline(createReadStream(join(layout, 'blobs', 'sha256', layer.digest.slice('sha256:'.length))), reader);
  }
  return found;
}

test('a no-change rebuild takes the closure from the index: no nix path-info, the same image', { skip }, (t) => {
  const project = loggedNixProject(t, [{ nix: 'app.nix' }], { 'app.nix': helloApp('closure cache') });
  const first = project.build();
  assert.equal(pathInfoCalls(first.nixCalls).length, 1, `the first build asks Nix once (wrapper saw: ${first.nixCalls.join(' | ')})`);
  const second = project.build();
  assert.deepEqual(pathInfoCalls(second.nixCalls), []);
  assert.equal(second.image.manifestDigest, first.image.manifestDigest);
  assert.equal(second.image.configDigest, first.image.configDigest);
  assert.deepEqual(second.image.layers.map((l) => l.storePaths), first.image.layers.map((l) => l.storePaths));
});

test('a root deleted and rebuilt with other bytes under the same store path is asked of Nix again', { skip }, async (t) => {
  // The builder reads a file outside the store (the sandbox is off): its output path stays the
  // same while its bytes follow the file — a non-reproducible build.
  const outside = mkdtempSync(join(tmpdir(), 'nixdock-outside-'));
  t.after(() => rmSync(outside, { recursive: true, force: true }));
  chmodSync(outside, 0o755); // builders run as a nixbld user
  writeFileSync(join(outside, 'message'), 'first bytes\n', { mode: 0o644 });
  const expression = drv(`unstable-${process.pid}-${Date.now()}`, `export PATH=/usr/bin:/bin; mkdir -p $out; cat ${outside}/message > $out/message`);
  const project = loggedNixProject(t, [{ nix: 'app.nix' }], { 'app.nix': expression });

  const first = project.build().image;
  const root = first.layers.flatMap((l) => l.storePaths).find((p) => p.includes('-unstable-'))!;
  const layout = join(project.dir, 'out', 'oci');
  assert.equal(await fileInImage(layout, first, `${root}/message`), 'first bytes\n');

  execFileSync('nix-store', ['--delete', root], { env: NIX_ENV, stdio: 'ignore' });
  writeFileSync(join(outside, 'message'), 'second bytes\n');
  const second = project.build();
  assert.ok(second.image.layers.some((l) => l.storePaths.includes(root)), 'the same store path came back');
  assert.equal(pathInfoCalls(second.nixCalls).length, 1, 'the changed fingerprint sends the closure query to Nix');
  assert.equal(await fileInImage(layout, second.image, `${root}/message`), 'second bytes\n');
  assert.notEqual(second.image.manifestDigest, first.manifestDigest);

  const third = project.build();
  assert.deepEqual(pathInfoCalls(third.nixCalls), [], 'the new answer is cached in turn');
  assert.equal(third.image.manifestDigest, second.image.manifestDigest);
});

test('a cached root that no longer exists gives the same STORE_PATH_MISSING error as without a cache', { skip }, (t) => {
  const [root] = nixBuild(drv(`doomed-${process.pid}-${Date.now()}`, 'export PATH=/usr/bin:/bin; mkdir -p $out/share; echo doomed > $out/share/doomed')) as [string];
  const project = loggedNixProject(t, [root]);
  project.build();

  execFileSync('nix-store', ['--delete', root], { env: NIX_ENV, stdio: 'ignore' });
  const run = project.run();
  assert.equal(run.status, 2, run.stderr);
  assert.match(run.stderr, new RegExp(`Store path ${root} does not exist`));
  assert.match(run.stderr, /contents\[0\]/);
  assert.match(run.stderr, /nix-build/, 'the hint says how to get the path back');
});
