/**
 * `nixdock inspect` on an image it cannot trust: an unsafe layer, a layer whose bytes do not
 * match its diff_id, a layer that is not a tar. Each fails with its code and a non-zero exit,
 * with and without --json (it used to exit 0 and print nothing).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import tar from 'tar-stream';
import { nixdock } from '../helpers/cli.js';
import { readAll, sha256 } from '../helpers/bytes.js';
import { writeOciLayout } from '../helpers/base-images.js';

async function tarOf(name: string): Promise<Buffer> {
  const pack = tar.pack();
  const bytes = readAll(pack as unknown as NodeJS.ReadableStream);
  pack.entry({ name, size: 2 }, 'hi');
  pack.finalize();
  return bytes;
}

describe('nixdock inspect of a bad image', () => {
  let work: string;
  const cases: Array<{ name: string; code: string; exit: number; message: RegExp }> = [
    { name: 'unsafe', code: 'UNSAFE_ARCHIVE', exit: 2, message: /escape the image root/ },
    { name: 'corrupt', code: 'DIGEST_MISMATCH', exit: 1, message: /do not match its diff_id/ },
    { name: 'not-a-tar', code: 'INPUT_INVALID', exit: 2, message: /is not a readable tar archive/ },
  ];
  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'nixdock-inspect-bad-'));
    const good = await tarOf('nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-x/file');
    const notTar = Buffer.alloc(1024, 'x');
    writeOciLayout(join(work, 'layout'), [
      { tag: 'unsafe', layers: [await tarOf('../../escape')], config: {} },
      { tag: 'corrupt', layers: [good], config: {}, diffIds: [sha256('something else')] },
      { tag: 'not-a-tar', layers: [notTar], config: {} },
    ]);
  });
  after(() => rmSync(work, { recursive: true, force: true }));

  for (const c of cases) {
    test(`${c.name}: ${c.code}, exit ${c.exit}, also with --json`, () => {
      const env = { ...process.env, XDG_CACHE_HOME: join(work, 'cache') };
      const plain = nixdock(work, ['inspect', `oci:${join(work, 'layout')}:${c.name}`], env);
      assert.equal(plain.status, c.exit, plain.stderr);
      assert.match(plain.stderr, new RegExp(c.code));
      assert.match(plain.stderr, c.message);
      assert.equal(plain.stdout, '');
      const json = nixdock(work, ['inspect', '--json', `oci:${join(work, 'layout')}:${c.name}`], env);
      assert.equal(json.status, c.exit);
      const out = JSON.parse(json.stdout) as { ok: boolean; error: { code: string; message: string } };
      assert.equal(out.ok, false);
      assert.equal(out.error.code, c.code);
      assert.match(out.error.message, c.message);
    });
  }
});
