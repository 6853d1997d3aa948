import assert from 'node:assert/strict';
import { test } from 'node:test';
import { mergeBaseConfig } from '../../src/base/merge.js';
import type { ContainerConfig, ImageConfigFile } from '../../src/types.js';

function base(config: ContainerConfig | Record<string, unknown>): ImageConfigFile {
  return { created: '1970-01-01T00:00:01Z', architecture: 'amd64', os: 'linux', config: config as ContainerConfig, rootfs: { type: 'layers', diff_ids: [] }, history: [] };
}

test('Env is inherited; own values win per variable, without duplicates, in stable order', () => {
  const merged = mergeBaseConfig(base({ Env: ['PATH=/usr/bin:/bin', 'LANG=C', 'TZ=UTC'] }), { Env: ['LANG=C.UTF-8', 'APP=1', 'PATH=/nix/bin'] });
  assert.deepEqual(merged.Env, ['PATH=/nix/bin', 'LANG=C.UTF-8', 'TZ=UTC', 'APP=1']);
});

test('a variable repeated in one list keeps its last value once', () => {
  assert.deepEqual(mergeBaseConfig(base({ Env: ['A=1', 'A=2'] }), { Env: ['B=1', 'B=2'] }).Env, ['A=2', 'B=2']);
});

test('Env of only one side is kept as is; none at all stays absent', () => {
  assert.deepEqual(mergeBaseConfig(base({ Env: ['A=1'] }), {}).Env, ['A=1']);
  assert.deepEqual(mergeBaseConfig(base({}), { Env: ['B=2'] }).Env, ['B=2']);
  assert.equal('Env' in mergeBaseConfig(base({}), {}), false);
});

test('only Env is inherited, as nixpkgs\' overlay_base_config does: the base\'s Cmd, WorkingDir, User, Labels are not', () => {
  const merged = mergeBaseConfig(
    base({ Cmd: ['/bin/sh'], Entrypoint: null, WorkingDir: '/base', User: 'nobody', Labels: { from: 'base' }, Volumes: null, Env: ['A=1'] }),
    { Cmd: ['/bin/app'], Labels: { own: 'yes' }, ExposedPorts: { '80/tcp': {} } },
  );
  assert.deepEqual(merged, { Cmd: ['/bin/app'], Labels: { own: 'yes' }, ExposedPorts: { '80/tcp': {} }, Env: ['A=1'] });
  assert.deepEqual(mergeBaseConfig(base({ Cmd: ['/bin/sh'], User: 'nobody' }), {}), {});
});

test('a base with "Env": null (Docker\'s unset) inherits nothing', () => {
  assert.deepEqual(mergeBaseConfig(base({ Env: null }), { Env: ['B=1'] }), { Env: ['B=1'] });
});

test('the inputs are not modified', () => {
  const baseImage = base({ Env: ['A=1'] });
  const own: ContainerConfig = { Env: ['A=2'] };
  mergeBaseConfig(baseImage, own);
  assert.deepEqual(baseImage.config.Env, ['A=1']);
  assert.deepEqual(own.Env, ['A=2']);
});
