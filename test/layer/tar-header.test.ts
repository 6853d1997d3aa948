import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { describe, test } from 'node:test';
import { BLOCK_SIZE, HeaderTemplate, trailerSize, type HeaderFields } from '../../src/tar/header.js';
import type { TarSettings } from '../../src/types.js';
import { missingTools } from '../helpers/tools.js';

const ROOT: TarSettings = { mtime: 1, uid: 0, gid: 0, uname: 'root', gname: 'root' };

interface Case {
  entry: HeaderFields;
  settings: TarSettings;
}

const file = (name: string, size = 0, mode = 0o444): HeaderFields => ({ name, type: 'file', mode, size, linkName: '' });
const dir = (name: string): HeaderFields => ({ name: `${name}/`, type: 'dir', mode: 0o555, size: 0, linkName: '' });
const link = (name: string, target: string): HeaderFields => ({ name, type: 'symlink', mode: 0o777, size: 0, linkName: target });

/** Boundaries of every rule: name/link/owner lengths, non-ASCII, pax record length digits, numeric overflow. */
const CASES: Case[] = [
  ...[1, 99, 100, 101, 150].map((n) => ({ entry: file(`/${'a'.repeat(n - 1)}`, 7, 0o555), settings: ROOT })),
  ...[98, 99, 100, 101].map((n) => ({ entry: dir(`/${'b'.repeat(n - 1)}`), settings: ROOT })),
  // "<len> path=<value>\n": these lengths move len from 2 to 3 and 3 to 4 digits.
  ...[89, 90, 91, 92, 991, 992, 993, 994, 995, 996].map((n) => ({ entry: file(`/${'c'.repeat(n - 1)}`), settings: ROOT })),
  { entry: file('/nix/store/héllo-wörld.txt', 3), settings: ROOT },
  { entry: file('/\u{1F433}/\uFB01'), settings: ROOT },
  { entry: file(`/${'é'.repeat(120)}`), settings: ROOT },
  { entry: dir('/日本語'), settings: ROOT },
  ...[100, 101].map((n) => ({ entry: link('/l', 't'.repeat(n)), settings: ROOT })),
  { entry: link('/l', 'wörld'), settings: ROOT },
  { entry: link(`/${'n'.repeat(200)}`, `/${'t'.repeat(200)}`), settings: ROOT },
  { entry: file('/f', 8 ** 11 - 1), settings: ROOT },
  { entry: file('/f', 8 ** 11), settings: ROOT },
  { entry: file('/f', 0o7777, 0o4755), settings: ROOT },
  { entry: file('/f'), settings: { mtime: 8 ** 11 - 1, uid: 8 ** 7 - 1, gid: 8 ** 7 - 1, uname: 'u'.repeat(32), gname: 'g'.repeat(32) } },
  { entry: file('/f'), settings: { mtime: 8 ** 11, uid: 8 ** 7, gid: 8 ** 7, uname: 'u'.repeat(33), gname: 'g'.repeat(33) } },
  { entry: file(`/${'p'.repeat(120)}`, 8 ** 11), settings: { mtime: -1, uid: 0, gid: 8 ** 8, uname: 'nïx', gname: 'grüppe' } },
];

/** Python's tarfile encoding of each case (PAX format, as stream_layered_image.py writes), hex per case. */
const PYTHON_HEADERS = String.raw`
import json, sys, tarfile
types = {'file': tarfile.REGTYPE, 'dir': tarfile.DIRTYPE, 'symlink': tarfile.SYMTYPE}
out = []
for case in json.load(sys.stdin):
    e, s = case['entry'], case['settings']
    info = tarfile.TarInfo(e['name'].rstrip('/') if e['type'] == 'dir' else e['name'])
    info.type, info.mode, info.size, info.linkname = types[e['type']], e['mode'], e['size'], e['linkName']
    info.mtime, info.uid, info.gid, info.uname, info.gname = s['mtime'], s['uid'], s['gid'], s['uname'], s['gname']
    out.append(info.tobuf(tarfile.PAX_FORMAT, 'utf-8', 'surrogateescape').hex())
print(json.dumps(out))
`;

describe('tar header encoder', () => {
  test('writes the same header bytes as Python tarfile for every boundary case', { skip: missingTools([['python3', 'python3']]) }, () => {
    const expected = JSON.parse(
      execFileSync('python3', ['-c', PYTHON_HEADERS], { input: JSON.stringify(CASES), encoding: 'utf8', env: { ...process.env, PYTHONUTF8: '1' } }),
    ) as string[];
    CASES.forEach(({ entry, settings }, i) => {
      const template = new HeaderTemplate(settings);
      const size = template.headerSize(entry);
      const out = Buffer.alloc(size + BLOCK_SIZE, 0xee); // poisoned: every header byte must be written
      const end = template.write(out, 0, entry);
      assert.equal(end, size, `headerSize matches bytes written (case ${i}: ${entry.name.slice(0, 40)})`);
      assert.equal(out.subarray(0, end).toString('hex'), expected[i], `case ${i}: ${entry.name.slice(0, 40)}`);
      assert.equal(template.entrySize(entry), size + Math.ceil(entry.size / BLOCK_SIZE) * BLOCK_SIZE);
    });
  });

  test('the archive ends with two zero blocks padded to a 10240-byte record', () => {
    assert.equal(trailerSize(0), 10240);
    assert.equal(trailerSize(512), 10240 - 512);
    assert.equal(trailerSize(10240 - 1024), 1024);
    assert.equal(trailerSize(10240 - 512), 1024 + 10240 - 512);
  });
});
