/** `nixdock export NAME[:TAG] out.tar` for images of the project, checked by extracting with GNU tar. */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, readlinkSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { helloApp } from '../helpers/nix.js';
import { missingTools } from '../helpers/tools.js';
import { nixdock, nixdockJson } from '../helpers/cli.js';
import { tempProject } from '../helpers/project.js';

const skip = missingTools([['nix-build', 'nix-bin'], ['tar', 'tar']]);

/** Extracts a tarball with GNU tar and returns the message the hello app in it would print. */
function messageIn(tarball: string, into: string): string {
  mkdirSync(into);
  execFileSync('tar', ['-xf', tarball, '-C', into]);
  const hello = readlinkSync(join(into, 'bin', 'hello'));
  assert.match(hello, /^\/nix\/store\/[a-z0-9]{32}-hello-app\/bin\/hello$/);
  const script = readFileSync(join(into, hello), 'utf8');
  const messageFile = /cat (\/nix\/store\/\S+)/.exec(script)![1]!;
  return readFileSync(join(into, messageFile), 'utf8').trim();
}

test('nixdock export of a project image: the newest build by default, or the tag named', { skip }, (t) => {
  const project = tempProject(t, {
    'nixdock.config.json': {
      store: 'nix',
      images: [
        { name: 'app', contents: [{ nix: './app.nix' }], config: { Cmd: ['/bin/hello'] } },
        { name: 'other', tag: 'latest', contents: [{ nix: './other.nix' }] },
      ],
    },
    'other.nix': helloApp('other image'),
  }).dir;
  const build = (message: string): string => {
    writeFileSync(join(project, 'app.nix'), helloApp(message));
    return nixdockJson(project, ['build']).images[0]!.tag;
  };
  const v1 = build('v1');
  build('v2');
  // v1 again: the layout lists v1 before v2, but the newest build is v1.
  assert.equal(build('v1'), v1);

  const newest = nixdockJson(project, ['export', 'app', 'newest.tar']);
  assert.equal(newest.source, `app:${v1}`);
  assert.equal(messageIn(join(project, 'newest.tar'), join(project, 'newest')), 'v1');

  const tags = JSON.parse(readFileSync(join(project, 'out', 'oci', 'index.json'), 'utf8')).manifests.map((m: any) => m.annotations['io.containerd.image.name']);
  const v2 = tags.find((name: string) => name.startsWith('app:') && name !== `app:${v1}`);
  nixdockJson(project, ['export', v2, 'v2.tar']);
  assert.equal(messageIn(join(project, 'v2.tar'), join(project, 'v2')), 'v2');

  nixdockJson(project, ['export', 'other', 'other.tar']);
  assert.equal(messageIn(join(project, 'other.tar'), join(project, 'other')), 'other image');

  const missing = nixdock(project, ['export', 'app:nope', 'nope.tar']);
  assert.equal(missing.status, 2);
  assert.match(missing.stderr, /IMAGE_NOT_FOUND/);
  const bad = nixdock(project, ['export', 'zip:/x/y', 'bad.tar']);
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /INPUT_INVALID[\s\S]*oci:DIR/);
  assert.ok(!readdirSync(project).some((f) => f.startsWith('nope') || f.startsWith('bad')), 'nothing written for a failed export');
});
