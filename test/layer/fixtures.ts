/**
 * Layer-format fixtures: store paths full of tar edge cases, built in the real Nix store, and a
 * Python reference writer that reproduces nixpkgs' stream_layered_image.py (`archive_paths_to`)
 * with python3's tarfile, to compare bytes against.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import type { TarSettings } from '../../src/types.js';
import { drv, nixBuild } from '../helpers/nix.js';

export const LONG_DIR = 'd'.repeat(120);
export const LONG_FILE = 'f'.repeat(200);
export const LONG_TARGET = `${'../'.repeat(40)}target-${'t'.repeat(20)}`;
export const UTF8_NAMES = ['héllo-wörld.txt', '日本語', '\u{1F433}', '\uFB01'];
/** Over 8 MiB, so a layer holding the edge tree is tarred by a worker thread (smaller ones are tarred inline). */
export const BIG_FILE_SIZE = 9 * 1024 * 1024 + 123;

const EDGE_TREE_SCRIPT = `
export PATH=/usr/bin:/bin
mkdir -p $out/bin $out/share/empty-dir $out/a $out/${LONG_DIR} $out/many
printf '#!/bin/sh\\necho run\\n' > $out/bin/run
chmod 755 $out/bin/run
printf 'data\\n' > $out/bin/data
ln $out/bin/data $out/bin/data-hardlink
: > $out/share/empty
printf f > $out/a/f
printf x > $out/a-b
printf x > $out/a.b
printf x > $out/B
printf long > $out/${LONG_DIR}/${LONG_FILE}
${UTF8_NAMES.map((name) => `printf u > "$out/${name}"`).join('\n')}
ln -s bin/run $out/link-rel
ln -s ${LONG_TARGET} $out/link-long
ln -s "${UTF8_NAMES[0]}" $out/link-utf8
ln -s share $out/link-dir
ln -s /nonexistent/dangling $out/link-dangling
head -c ${BIG_FILE_SIZE} /dev/urandom > $out/big
cd $out/many && head -c 1200000 /dev/urandom | split -b 3001 -a 3 - part-
`;

export interface EdgePaths {
  /** A directory tree with every edge case. */
  tree: string;
  /** A store path that is a single file. */
  file: string;
  /** A store path that is a symlink (to the tree's bin/run). */
  symlink: string;
}

let built: EdgePaths | undefined;

/** Builds (once per process) the edge-case store paths. */
export function edgePaths(): EdgePaths {
  if (built) return built;
  const tree = drv('edge-tree', EDGE_TREE_SCRIPT);
  const [treePath, file, symlink] = nixBuild(`[ ${tree} ${drv('edge-file', "export PATH=/usr/bin:/bin; printf 'single file\\n' > $out")} ${drv('edge-symlink', 'export PATH=/usr/bin:/bin; ln -s ${tree}/bin/run $out', { tree })} ]`);
  built = { tree: treePath!, file: file!, symlink: symlink! };
  return built;
}

const REFERENCE_WRITER = String.raw`
import itertools, json, pathlib, sys, tarfile

def owned(info, conf):
    info.mtime, info.uid, info.gid = conf['mtime'], conf['uid'], conf['gid']
    info.uname, info.gname = conf['uname'], conf['gname']
    return info

def archive_paths(out, conf):
    with tarfile.open(fileobj=out, mode='w|') as tar:
        for root in ('/nix', '/nix/store'):
            info = tarfile.TarInfo(root)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(owned(info, conf))
        for path in map(pathlib.Path, conf['paths']):
            members = [path] if path.is_symlink() else itertools.chain([path], path.rglob('*'))
            for member in sorted(members):
                info = tar.gettarinfo(member)
                info.name = '/' + info.name
                if info.islnk():
                    info.type, info.linkname, info.size = tarfile.REGTYPE, '', member.stat().st_size
                owned(info, conf)
                if info.isfile():
                    with open(member, 'rb') as content:
                        tar.addfile(info, content)
                else:
                    tar.addfile(info)

for job in json.load(open(sys.argv[1])):
    with open(job['out'], 'wb') as out:
        archive_paths(out, job)
`;

export interface ReferenceJob {
  paths: string[];
  settings: TarSettings;
}

/**
 * The layers nixpkgs' script writes for these jobs (its bytes, via python3's tarfile).
 * One python3 process for all jobs: interpreter start-up (a pyenv shim) can cost over a second.
 */
export function referenceLayers(jobs: ReferenceJob[]): Buffer[] {
  const dir = mkdtempSync(join(tmpdir(), 'nixdock-layer-ref-'));
  try {
    const conf = jobs.map((job, i) => ({ paths: job.paths, ...job.settings, out: join(dir, `${i}.tar`) }));
    writeFileSync(join(dir, 'writer.py'), REFERENCE_WRITER);
    writeFileSync(join(dir, 'jobs.json'), JSON.stringify(conf));
    execFileSync('python3', [join(dir, 'writer.py'), join(dir, 'jobs.json')], { env: { ...process.env, PYTHONUTF8: '1' } });
    return conf.map((job) => readFileSync(job.out));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

export function sha256(bytes: Buffer): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

/** A temp dir removed by the returned cleanup, even where modes were made read-only. */
export function tempDir(prefix: string): { path: string; cleanup: () => void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return {
    path,
    cleanup: () => {
      execFileSync('chmod', ['-R', 'u+w', path]);
      rmSync(path, { recursive: true, force: true });
    },
  };
}
