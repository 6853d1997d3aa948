import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { NixdockError } from '../../src/errors.js';
import { NixStore } from '../../src/store/nix.js';
import { NIX_ENV, drv, helloApp, nixBuild } from '../helpers/nix.js';
import { missingTools } from '../helpers/tools.js';

// The store shells out to nix with the process environment; the binary cache is unreachable here.
process.env.NIX_CONFIG = NIX_ENV.NIX_CONFIG;

const skip = missingTools([['nix', 'nix-bin'], ['nix-build', 'nix-bin']]);

describe('NixStore against the real Nix store', { skip }, () => {
  const store = new NixStore();
  let app: string;
  let work: string;

  before(() => {
    app = nixBuild(helloApp())[0]!;
    work = mkdtempSync(join(tmpdir(), 'nixdock-nixstore-'));
  });
  after(() => rmSync(work, { recursive: true, force: true }));

  test('closure of the hello app is its 3 paths with their references', async () => {
    const closure = await store.closure([app]);
    assert.equal(closure.storeDir, '/nix/store');
    assert.deepEqual(closure.roots, [app]);
    const names = [...closure.paths.keys()].map((p) => p.replace(/^\/nix\/store\/[a-z0-9]{32}-/, ''));
    assert.deepEqual(names.sort(), ['busybox-static', 'hello-app', 'hello-data']);
    const byName = (name: string) => [...closure.paths.values()].find((info) => info.path.endsWith(`-${name}`))!;
    assert.deepEqual(byName('hello-app').references, [byName('hello-data').path, byName('busybox-static').path].sort());
    assert.deepEqual(byName('busybox-static').references, []);
    assert.deepEqual(byName('hello-data').references, []);
    assert.ok(byName('busybox-static').narSize > readFileSync('/bin/busybox').length, 'NAR size covers the busybox binary');
    assert.match(byName('hello-app').narHash ?? '', /^sha256/);
  });

  test('a file inside a store path stands for that store path', async () => {
    const closure = await store.closure([`${app}/bin/hello`]);
    assert.deepEqual(closure.roots, [app]);
    assert.equal(closure.paths.size, 3);
  });

  test('realises a .nix file with an attribute, relative to cwd', async () => {
    const message = `realised ${process.pid}-${Date.now()}`;
    writeFileSync(join(work, 'image.nix'), `{ greeting = ${drv('greeting', `echo ${JSON.stringify(message)} > $out`)}; }`);
    const outputs = await store.realise({ kind: 'file', file: 'image.nix', attr: 'greeting' }, work);
    assert.equal(outputs.length, 1);
    assert.match(outputs[0]!, /^\/nix\/store\/[a-z0-9]{32}-greeting$/);
    assert.equal(readFileSync(outputs[0]!, 'utf8').trim(), message);
  });

  test('an expression that fails to evaluate gives NIX_FAILED with Nix\'s message', async () => {
    writeFileSync(join(work, 'broken.nix'), '{ broken = throw "nixdock-test-boom"; }');
    const err = await store.realise({ kind: 'file', file: 'broken.nix', attr: 'broken' }, work).then(() => undefined, (e: unknown) => e);
    assert.ok(err instanceof NixdockError);
    assert.equal(err.code, 'NIX_FAILED');
    assert.match(err.message, /nixdock-test-boom/);
  });

  test('a builder that fails gives NIX_FAILED with the build error', async () => {
    writeFileSync(join(work, 'fails.nix'), drv('fails-on-purpose', `echo "builder says no ${Date.now()}" >&2; exit 3`));
    const err = await store.realise({ kind: 'file', file: join(work, 'fails.nix') }, work).then(() => undefined, (e: unknown) => e);
    assert.ok(err instanceof NixdockError);
    assert.equal(err.code, 'NIX_FAILED');
    assert.match(err.message, /builder says no/);
    assert.match(err.message, /exit code 3/);
  });

  test('a path that is not in the store gives STORE_PATH_MISSING naming it', async () => {
    const missing = '/nix/store/0123456789abcdfghijklmnpqrsvwxyz-nixdock-missing';
    const err = await store.closure([app, missing]).then(() => undefined, (e: unknown) => e);
    assert.ok(err instanceof NixdockError);
    assert.equal(err.code, 'STORE_PATH_MISSING');
    assert.match(err.message, new RegExp(missing));
  });

  test('a path outside the store gives STORE_PATH_OUTSIDE', async () => {
    const err = await store.closure([work]).then(() => undefined, (e: unknown) => e);
    assert.ok(err instanceof NixdockError);
    assert.equal(err.code, 'STORE_PATH_OUTSIDE');
    assert.equal(err.found, work);
  });

  test('no nix on PATH gives NIX_MISSING naming the package to install', async () => {
    const savedPath = process.env.PATH;
    process.env.PATH = work; // a directory without nix in it
    try {
      const closureErr = await store.closure([app]).then(() => undefined, (e: unknown) => e);
      const realiseErr = await store.realise({ kind: 'flake', ref: '.#image' }, work).then(() => undefined, (e: unknown) => e);
      for (const err of [closureErr, realiseErr]) {
        assert.ok(err instanceof NixdockError);
        assert.equal(err.code, 'NIX_MISSING');
        assert.match(err.hint ?? '', /nix-bin/);
        assert.equal(err.exitCode, 3);
      }
    } finally {
      process.env.PATH = savedPath;
    }
  });

  test('aborting a realise kills nix and its builder', async () => {
    // Builders run as a nixbld user: give it a directory it may write its pid into.
    const drop = mkdtempSync(join(tmpdir(), 'nixdock-builder-'));
    chmodSync(drop, 0o777);
    const pidFile = join(drop, 'builder.pid');
    writeFileSync(join(work, 'slow.nix'), drv('slow', `export PATH=/usr/bin:/bin; echo $$ > ${pidFile}.tmp; mv ${pidFile}.tmp ${pidFile}; exec /bin/sleep 600 # ${drop}`));
    const controller = new AbortController();
    const rejection = store.realise({ kind: 'file', file: 'slow.nix' }, work, controller.signal).then(() => undefined, (e: unknown) => e);
    let builderPid: number;
    try {
      await waitFor(() => existsSync(pidFile));
      builderPid = Number(readFileSync(pidFile, 'utf8'));
    } finally {
      controller.abort(); // also when waiting failed: never leave nix running behind the test
      rmSync(drop, { recursive: true, force: true });
    }
    const err = await rejection;
    assert.ok(err instanceof NixdockError);
    assert.equal(err.code, 'ABORTED');
    await waitFor(() => !isAlive(builderPid));
  });
});

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Polls until `condition` holds; fails after a generous deadline instead of hanging the run. */
async function waitFor(condition: () => boolean, deadlineMs = 30_000): Promise<void> {
  const start = Date.now();
  while (!condition()) {
    if (Date.now() - start > deadlineMs) throw new Error('condition not reached before the deadline');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
