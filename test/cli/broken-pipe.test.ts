/**
 * `nixdock stream IMAGE | head -c 1000`: when the reader of stdout goes away, nixdock stops quietly
 * with exit 0 like other Unix tools (it used to print INTERNAL: EPIPE and exit 1).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { nixdockArgv } from '../helpers/cli.js';
import { NIX_ENV, helloApp } from '../helpers/nix.js';
import { missingTools } from '../helpers/tools.js';
import { tempProject } from '../helpers/project.js';

test('stream into a reader that closes early: exit 0, nothing on stderr', { skip: missingTools([['nix-build', 'nix-bin']]) }, (t) => {
  const project = tempProject(t, {
    'nixdock.config.json': { images: [{ name: 'app', contents: [{ nix: './app.nix' }], config: { Cmd: ['/bin/hello'] } }] },
    'app.nix': helloApp('broken pipe'),
  });
  const argv = nixdockArgv(['stream', 'app']).map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  const run = spawnSync('bash', ['-c', `set -o pipefail; '${process.execPath}' ${argv} 2>stream.err | head -c 1000 >/dev/null; echo "exit=\${PIPESTATUS[0]}"; cat stream.err`], { cwd: project.dir, env: NIX_ENV, encoding: 'utf8' });
  assert.match(run.stdout, /^exit=0\n/, run.stdout);
  assert.doesNotMatch(run.stdout, /EPIPE|INTERNAL|error\[|failed/);
});
