/**
 * The `nixdock` bin is a bundle of the compiled CLI (scripts/bundle-cli.mjs): modules that locate
 * files next to themselves (the tar worker, the package entry a config imports) must still find
 * them, and the bundle must write the same image bytes as the source.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import { tempProject } from '../helpers/project.js';
import { NIX_ENV } from '../helpers/nix.js';
import { edgePaths } from '../helpers/edge-paths.js';
import { missingTools } from '../helpers/tools.js';
import { nixdockToFile, REPO } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';
import { sha256Hex } from '../helpers/bytes.js';

const NIX: [string, string] = ['nix-build', 'nix-bin'];

/** Compiles src/ with the project's tsconfig into `dir`/dist and bundles it as `npm run build` does; returns the bin. */
function buildBundle(dir: string): string {
  const tsc = join(REPO, 'node_modules/typescript/bin/tsc');
  execFileSync(process.execPath, [tsc, '-p', join(REPO, 'tsconfig.json'), '--outDir', join(dir, 'dist')], { stdio: 'pipe' });
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'nixdock', type: 'module', exports: './dist/index.js' }));
  // The bundle resolves its external packages (better-sqlite3, typescript) from node_modules, as installed.
  symlinkSync(join(REPO, 'node_modules'), join(dir, 'node_modules'));
  execFileSync(process.execPath, [join(REPO, 'scripts/bundle-cli.mjs'), join(dir, 'dist')], { stdio: 'pipe' });
  return join(dir, 'dist/bin/nixdock.js');
}

test('the bundled bin streams the same bytes as the source, through its tar worker, from a TS config', { skip: missingTools([NIX]) }, (t) => {
  const bin = buildBundle(tempDir(t, 'nixdock-bundle-'));
  // The edge tree is over 8 MiB: its layer is tarred by a worker thread, which the bundle must locate in dist/tar/.
  const { tree } = edgePaths();
  const config = `import { defineConfig } from 'nixdock';\nexport default defineConfig({ store: 'nix', images: [{ name: 'bb', contents: [${JSON.stringify(tree)}] }] });\n`;
  const bundled = tempProject(t, { 'nixdock.config.ts': config }).dir;
  const source = tempProject(t, { 'nixdock.config.ts': config }).dir;

  // Plain node, no tsx: as the installed bin runs.
  const env = { ...NIX_ENV, NODE_OPTIONS: '', XDG_CACHE_HOME: tempDir(t, 'nixdock-bundle-xdg-') };
  const run = spawnSync(process.execPath, [bin, 'stream', 'bb', '-q'], { cwd: bundled, env, maxBuffer: 256 << 20 });
  assert.equal(run.status, 0, run.stderr.toString());
  const fromSource = join(tempDir(t, 'nixdock-bundle-out-'), 'image.tar');
  const expected = nixdockToFile(source, ['stream', 'bb', '-q'], fromSource);
  assert.equal(expected.status, 0, expected.stderr);
  assert.ok(run.stdout.length > 8 << 20, 'a layer big enough for the worker');
  assert.equal(sha256Hex(run.stdout), sha256Hex(readFileSync(fromSource)));
});

test('through the bundled bin, a registry fromImage that cannot be reached is a REGISTRY error with its exit code', async (t) => {
  const bin = buildBundle(tempDir(t, 'nixdock-bundle-'));
  // A port that was free a moment ago: nothing listens there.
  const port = await new Promise<number>((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
  const ref = `127.0.0.1:${port}/base@sha256:${'0'.repeat(64)}`;
  const { dir: project } = tempProject(t, {
    'store/.keep': '',
    'nixdock.config.ts': `export default { store: { type: 'dir', path: './store' }, images: [{ name: 'app', fromImage: ${JSON.stringify(ref)} }] };\n`,
  });
  const env = { ...process.env, NODE_OPTIONS: '', XDG_CACHE_HOME: tempDir(t, 'nixdock-bundle-xdg-') };
  const run = spawnSync(process.execPath, [bin, 'build', 'app'], { cwd: project, env, encoding: 'utf8' });
  assert.match(run.stderr, /error\[REGISTRY\]/, run.stderr);
  assert.doesNotMatch(run.stderr, /INTERNAL/);
  assert.equal(run.status, 1, 'a registry failure is a failed build (exit code 1), not bad input');
});
