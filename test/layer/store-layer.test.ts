import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { appendFileSync, chmodSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { before, describe, test } from 'node:test';
import { NixdockError } from '../../src/errors.js';
import { hashLayer } from '../../src/layer/hash.js';
import { storeLayerSource } from '../../src/layer/store-layer.js';
import type { TarSettings } from '../../src/types.js';
import { missingTools } from '../helpers/tools.js';
import { BIG_FILE_SIZE, LONG_DIR, LONG_FILE, LONG_TARGET, UTF8_NAMES, edgePaths } from '../helpers/edge-paths.js';
import { referenceLayers } from '../helpers/nixpkgs-reference.js';
import { tempDir } from '../helpers/tmp.js';
import { readAll, sha256 } from '../helpers/bytes.js';

const NEEDS = missingTools([['nix-build', 'nix-bin'], ['python3', 'python3'], ['tar', 'tar']]);
const DEFAULTS: TarSettings = { mtime: 1, uid: 0, gid: 0, uname: 'root', gname: 'root' };
const OWNED: TarSettings = { mtime: 1_700_000_000, uid: 1000, gid: 100, uname: 'nixuser', gname: 'users' };
/** Owner settings that only fit pax records: non-ASCII and over-long names, uid over 7 octal digits, mtime over 11. */
const OVERSIZED_OWNER: TarSettings = { mtime: 8 ** 11, uid: 8 ** 7, gid: 42, uname: 'nïx', gname: 'g'.repeat(40) };

const identity = (path: string): string => path;

function layerOf(paths: string[], settings: TarSettings, physicalPath = identity) {
  return storeLayerSource({ paths, settings, storeDir: '/nix/store', physicalPath });
}

function allPaths(): string[] {
  const edge = edgePaths();
  return [edge.tree, edge.file, edge.symlink];
}

describe('store layer bytes', { skip: NEEDS }, () => {
  const settingsCases = [['default owner', DEFAULTS], ['custom owner', OWNED], ['pax-only owner', OVERSIZED_OWNER]] as const;
  const pathCases = (): string[][] => {
    const { file, symlink } = edgePaths();
    return [[file], [symlink], [symlink, file]];
  };
  let references: Buffer[] = [];
  before(() => {
    references = referenceLayers([
      ...settingsCases.map(([, settings]) => ({ paths: allPaths(), settings })),
      ...pathCases().map((paths) => ({ paths, settings: DEFAULTS })),
    ]);
  });

  settingsCases.forEach(([label, settings], i) => {
    test(`is byte-identical to nixpkgs' stream_layered_image.py (${label})`, async () => {
      const layer = layerOf(allPaths(), settings);
      const ours = await readAll(layer.open());
      const theirs = references[i]!;
      assert.equal(ours.length, theirs.length, 'tar length');
      assert.equal(sha256(ours), sha256(theirs));
      assert.equal(await layer.size(), ours.length, 'size() is the exact byte count');
      assert.equal(ours.length % 10240, 0, 'padded to whole 10240-byte records');
    });
  });

  test('a single-file path, a symlink path and another order also match the reference', async () => {
    for (const [i, paths] of pathCases().entries()) {
      const ours = await readAll(layerOf(paths, DEFAULTS).open());
      assert.equal(sha256(ours), sha256(references[settingsCases.length + i]!), paths.map((p) => basename(p)).join(' '));
    }
  });

  test('two runs, and two sources for the same input, give identical bytes and keys', async () => {
    const paths = allPaths();
    const first = layerOf(paths, OWNED);
    const again = layerOf(paths, OWNED);
    const runs = [await readAll(first.open()), await readAll(first.open()), await readAll(again.open())];
    assert.equal(new Set(runs.map(sha256)).size, 1);
    assert.equal(first.key, again.key);
    assert.equal((await hashLayer(again)).diffId, sha256(runs[0]!));
  });
});

describe('store layer as GNU tar lists it', { skip: NEEDS }, () => {
  test('names, types, modes, owners and sizes are what the store holds', async (t) => {
    const { tree, file, symlink } = edgePaths();
    const dir = tempDir(t, 'nixdock-layer-tar-');
    const tarPath = join(dir, 'layer.tar');
    writeFileSync(tarPath, await readAll(layerOf([tree, file, symlink], OWNED).open()));
    const listing = execFileSync('tar', ['--quoting-style=literal', '-tvf', tarPath], {
      env: { ...process.env, TZ: 'UTC', LC_ALL: 'C.UTF-8' },
      stdio: ['ignore', 'pipe', 'ignore'], // tar notes that it strips the leading / on stderr
      encoding: 'utf8',
    });
    const entries = parseListing(listing);
    const byName = new Map(entries.map((e) => [e.name, e]));
    const expect = (name: string, perms: string, size?: number, target?: string): void => {
      const entry = byName.get(name);
      assert.ok(entry, `${name} is listed`);
      assert.equal(entry.perms, perms, `mode of ${name}`);
      if (size !== undefined) assert.equal(entry.size, size, `size of ${name}`);
      assert.equal(entry.target, target, `link target of ${name}`);
    };

    assert.deepEqual(entries.slice(0, 3).map((e) => e.name), ['/nix/', '/nix/store/', `${tree}/`]);
    expect('/nix/', 'drwxr-xr-x');
    expect('/nix/store/', 'drwxr-xr-x');
    expect(`${tree}/`, 'dr-xr-xr-x');
    expect(`${tree}/bin/run`, '-r-xr-xr-x', 19);
    expect(`${tree}/bin/data`, '-r--r--r--', 5);
    assert.ok(statSync(`${tree}/bin/data-hardlink`).nlink > 1, 'the fixture really has a hard link');
    expect(`${tree}/bin/data-hardlink`, '-r--r--r--', 5); // a full regular file, not a tar hard link
    expect(`${tree}/share/empty`, '-r--r--r--', 0);
    expect(`${tree}/share/empty-dir/`, 'dr-xr-xr-x');
    expect(`${tree}/${LONG_DIR}/`, 'dr-xr-xr-x');
    expect(`${tree}/${LONG_DIR}/${LONG_FILE}`, '-r--r--r--', 4);
    expect(`${tree}/big`, '-r--r--r--', BIG_FILE_SIZE);
    for (const name of UTF8_NAMES) expect(`${tree}/${name}`, '-r--r--r--', 1);
    expect(`${tree}/link-rel`, 'lrwxrwxrwx', 0, 'bin/run');
    expect(`${tree}/link-long`, 'lrwxrwxrwx', 0, LONG_TARGET);
    expect(`${tree}/link-utf8`, 'lrwxrwxrwx', 0, UTF8_NAMES[0]);
    expect(`${tree}/link-dir`, 'lrwxrwxrwx', 0, 'share');
    expect(file, '-r--r--r--', 12);
    expect(symlink, 'lrwxrwxrwx', 0, `${tree}/bin/run`);
    assert.ok(!byName.has(`${tree}/link-dir/empty`), 'a symlinked directory is not followed');

    assert.deepEqual(new Set(entries.map((e) => e.owner)), new Set(['nixuser/users']));
    assert.deepEqual(new Set(entries.map((e) => e.date)), new Set(['2023-11-14 22:13']));

    const names = entries.map((e) => e.name);
    const order = ['B', 'a/', 'a/f', 'a-b', 'a.b', UTF8_NAMES[3], UTF8_NAMES[2]].map((n) => names.indexOf(`${tree}/${n}`));
    assert.deepEqual(order, [...order].sort((x, y) => x - y), 'children in byte order of names, depth first');

    const onDisk = execFileSync('find', [tree, file, symlink], { encoding: 'utf8' }).trim().split('\n');
    const expectedNames = onDisk.map((p) => (byName.get(`${p}/`) ? `${p}/` : p));
    assert.deepEqual(new Set(names.slice(2)), new Set(expectedNames), 'every file of the store paths, nothing else');
    assert.equal(names.length, onDisk.length + 2);
  });
});

interface Listed { perms: string; owner: string; size: number; date: string; name: string; target?: string }

/** Parses `tar -tv` lines: perms owner/group size date time name [-> target]. */
function parseListing(listing: string): Listed[] {
  return listing.trimEnd().split('\n').map((line) => {
    const match = /^(\S+) (\S+) +(\d+) (\S+ \S+) (.*)$/.exec(line);
    assert.ok(match, `tar listing line: ${line}`);
    const [, perms, owner, size, date, rest] = match;
    const [name, target] = perms!.startsWith('l') ? rest!.split(' -> ') : [rest!];
    return { perms: perms!, owner: owner!, size: Number(size), date: date!, name: name!, target };
  });
}

describe('store layer inputs', { skip: NEEDS }, () => {
  test('reads files through physicalPath: a copy elsewhere gives the same bytes', async (t) => {
    const paths = allPaths();
    const copy = tempDir(t, 'nixdock-layer-copy-');
    execFileSync('cp', ['-a', ...paths, copy]);
    const fromCopy = layerOf(paths, DEFAULTS, (p) => join(copy, basename(p)));
    assert.equal((await hashLayer(fromCopy)).diffId, (await hashLayer(layerOf(paths, DEFAULTS))).diffId);
  });

  test('a file that grows or shrinks after the walk fails the layer instead of writing a wrong tar', async (t) => {
    const { tree } = edgePaths();
    const copy = tempDir(t, 'nixdock-layer-corrupt-');
    execFileSync('cp', ['-a', tree, copy]);
    const physical = join(copy, basename(tree));
    const layer = layerOf([tree], DEFAULTS, () => physical);
    await layer.size(); // the walk measured every file
    chmodSync(join(physical, 'bin'), 0o755);
    chmodSync(join(physical, 'bin/data'), 0o644);
    appendFileSync(join(physical, 'bin/data'), 'more');
    await assert.rejects(hashLayer(layer), (err: NixdockError) => err.code === 'LAYER_BUILD' && /grew/.test(err.message));
    truncateSync(join(physical, 'big'), 10);
    const fresh = layerOf([tree], DEFAULTS, () => physical);
    await fresh.size();
    truncateSync(join(physical, 'big'), 5);
    await assert.rejects(hashLayer(fresh), (err: NixdockError) => err.code === 'LAYER_BUILD' && /shrank/.test(err.message));
  });

  test('the key follows everything that changes the bytes, and nothing else', () => {
    const { tree, file } = edgePaths();
    const key = (paths: string[], settings: TarSettings) => layerOf(paths, settings).key;
    const base = key([tree, file], DEFAULTS);
    assert.match(base, /^[0-9a-f]{64}$/);
    assert.equal(key([tree, file], { ...DEFAULTS }), base);
    const variants = [
      key([file, tree], DEFAULTS),
      key([tree], DEFAULTS),
      key([tree, file], { ...DEFAULTS, mtime: 2 }),
      key([tree, file], { ...DEFAULTS, uid: 1 }),
      key([tree, file], { ...DEFAULTS, gid: 1 }),
      key([tree, file], { ...DEFAULTS, uname: 'nobody' }),
      key([tree, file], { ...DEFAULTS, gname: 'nogroup' }),
    ];
    assert.equal(new Set([base, ...variants]).size, variants.length + 1);
  });

  test('a missing store path or a path outside the store is a clear error', async () => {
    const missing = '/nix/store/00000000000000000000000000000000-not-there';
    await assert.rejects(layerOf([missing], DEFAULTS).size(), (err: NixdockError) => {
      assert.equal(err.code, 'STORE_PATH_MISSING');
      assert.equal(err.location?.file, missing);
      assert.ok(err.hint);
      return true;
    });
    const { tree } = edgePaths();
    for (const outside of ['/etc', `${tree}/bin`]) {
      await assert.rejects(readAll(layerOf([outside], DEFAULTS).open()), (err: NixdockError) => err.code === 'STORE_PATH_OUTSIDE');
    }
  });
});
