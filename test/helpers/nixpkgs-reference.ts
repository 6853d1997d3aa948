/**
 * A Python reference writer that reproduces nixpkgs' stream_layered_image.py (`archive_paths_to`)
 * with python3's tarfile: the layer bytes nixdock's must equal.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TarSettings } from '../../src/types.js';

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
