/**
 * dockerTools' customisation features as a migrating user meets them: the real CLI in temporary
 * projects over real Nix store paths, images run in podman (runc) and unpacked with umoci.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { tempProject } from '../config/project.js';
import { BUSYBOX, drv, nixBuild } from '../helpers/nix.js';
import { missingTools } from '../helpers/tools.js';
import { RUN_FLAGS, podman, tempDir } from '../output/fixtures.js';
import { nixdock, nixdockOk, snapshot } from './helpers.js';

const NIX: [string, string] = ['nix-build', 'nix-bin'];
const BWRAP: [string, string] = ['bwrap', 'bubblewrap'];
const PODMAN: Array<[string, string]> = [['podman', 'podman'], ['runc', 'runc']];

let built: { busybox: string; lib: string } | undefined;
/** busybox (a shell for the images) and a library path nothing in contents refers to. */
function fixtures(): { busybox: string; lib: string } {
  built ??= {
    busybox: nixBuild(BUSYBOX)[0]!,
    lib: nixBuild(drv('dockertools-lib', 'export PATH=/usr/bin:/bin; mkdir -p $out/share; echo from-the-lib > $out/share/msg'))[0]!,
  };
  return built;
}

/** Loads out/<name>.tar into a private podman store and runs `args` in the image. */
function runImage(t: Parameters<typeof tempDir>[0], archive: string, args: string[], runFlags: string[] = []): string {
  const store = join(tempDir(t, 'nixdock-pd-'), 'podman');
  const loaded = /Loaded image: (\S+)/.exec(podman(store, ['load', '-q', '-i', archive]));
  assert.ok(loaded, `podman load named no image for ${archive}`);
  return podman(store, [...RUN_FLAGS, ...runFlags, loaded[1]!, ...args]);
}

function project(t: Parameters<typeof tempProject>[0], image: object): string {
  return tempProject(t, { 'nixdock.config.json': { formats: ['oci', 'docker-archive'], images: [{ name: 'img', ...image }] } });
}

test('extraCommands: a store path it links to joins the image, and the link works at run time', { skip: missingTools([NIX, BWRAP, ...PODMAN]) }, (t) => {
  const { busybox, lib } = fixtures();
  const dir = project(t, { contents: [busybox], extraCommands: `mkdir -p etc; ln -s ${lib}/share/msg etc/msg`, config: { Cmd: ['/bin/cat', '/etc/msg'] } });
  nixdockOk(dir, ['build']);
  assert.equal(runImage(t, join(dir, 'out', 'img.tar'), []), 'from-the-lib\n');
});

test('extraCommands that fails (`false; true`) fails the build with exit 1 and leaves the previous outputs as they were', { skip: missingTools([NIX, BWRAP]) }, (t) => {
  const { busybox } = fixtures();
  const dir = project(t, { contents: [busybox], extraCommands: 'mkdir -p etc; echo one > etc/version' });
  nixdockOk(dir, ['build']);
  const before = snapshot(join(dir, 'out'));
  const config = join(dir, 'nixdock.config.json');
  const spec = JSON.parse(readFileSync(config, 'utf8'));
  spec.images[0].extraCommands = 'false; true';
  execFileSync('sh', ['-c', `cat > ${config}`], { input: JSON.stringify(spec) });
  const run = nixdock(dir, ['build']);
  assert.equal(run.status, 1, run.stderr);
  assert.match(run.stderr, /error\[LAYER_BUILD\]: extraCommands failed \(exit status 1\)/);
  assert.deepEqual(snapshot(join(dir, 'out')), before);
});
