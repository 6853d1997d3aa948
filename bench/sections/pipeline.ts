/** Issue 2, 3 and 13 targets: cold stream/build, warm cache without blobs, no-change rebuild, app change, warm stream. */
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { measure, nixdock, row, rss, writeProject, type BenchContext } from '../measure.js';

export function pipelineBench(ctx: BenchContext): void {
  const { project, floorSeconds: floor } = ctx;
  writeProject(project, ctx.app);
  // Cold layers, not a cold config: the first load of a config transpiles it (once per edit).
  measure(`${nixdock('stream synthetic -q')} > /dev/null`, project);
  rmSync(join(project, '.nixdock'), { recursive: true, force: true });
  const coldStream = measure(`${nixdock('stream synthetic -q')} | openssl dgst -sha256`, project);
  row('cold stream | openssl', coldStream.seconds, floor, '≤ 1.5×', rss(coldStream) + ' (target ≤ 200 MB; ≤ 2.0× is the bar)');
  // The cache now knows every layer's diff_id, and no blob was written: the layers are tarred again, not hashed again.
  const knownStream = measure(`${nixdock('stream synthetic -q')} | openssl dgst -sha256`, project);
  row('warm cache, no blobs: stream', knownStream.seconds, floor, '≤ 1.2×', rss(knownStream));
  rmSync(join(project, '.nixdock'), { recursive: true, force: true });

  const coldArchive = measure(nixdock('build --json --format docker-archive'), project);
  row('cold build → docker-archive', coldArchive.seconds, floor, '≤ 1.5×', rss(coldArchive));
  rmSync(join(project, '.nixdock'), { recursive: true, force: true });
  rmSync(join(project, 'out'), { recursive: true, force: true });

  const coldBuild = measure(nixdock('build --json'), project);
  row('cold build → OCI layout', coldBuild.seconds, floor, '≤ 1.5×', rss(coldBuild));
  const noChange = measure(nixdock('build --json'), project);
  row('no-change rebuild', noChange.seconds, floor, '≤ 0.2×', layerCounts(noChange.stdout));
  nixpkgsBench(ctx, storeLayers(coldBuild.stdout));

  writeProject(project, ctx.app2);
  const topChanged = measure(nixdock('build --json'), project);
  row('top-level package changed', topChanged.seconds, floor, '≤ 0.3×', layerCounts(topChanged.stdout) + ' (target ≤ 2 built)');

  const warmStream = measure(`${nixdock('stream synthetic -q')} | openssl dgst -sha256`, project);
  row('warm stream | openssl', warmStream.seconds, floor, '≤ 1.2×', rss(warmStream));
}

/**
 * nixpkgs' stream_layered_image.py against `nixdock stream --nixpkgs-conf` on the same conf.json
 * (nixdock's store layers, an empty customisation layer), both cold, both into openssl. The script
 * is not part of this repository: set NIXDOCK_BENCH_NIXPKGS_SCRIPT to a copy of
 * pkgs/build-support/docker/stream_layered_image.py to get the row.
 */
function nixpkgsBench(ctx: BenchContext, layers: string[][]): void {
  const script = process.env.NIXDOCK_BENCH_NIXPKGS_SCRIPT;
  if (!script) {
    console.log('nixpkgs stream_layered_image.py     skipped (set NIXDOCK_BENCH_NIXPKGS_SCRIPT to a copy of it)');
    return;
  }
  const dir = join(ctx.project, 'nixpkgs');
  mkdirSync(join(dir, 'customisation'), { recursive: true });
  const layerTar = join(dir, 'customisation', 'layer.tar');
  execFileSync('tar', ['-cf', layerTar, '-T', '/dev/null']);
  const checksum = execFileSync('sha256sum', [layerTar], { encoding: 'utf8' }).split(' ')[0]!;
  writeFileSync(join(dir, 'customisation', 'checksum'), checksum);
  const conf = {
    architecture: 'amd64', config: {}, created: '1970-01-01T00:00:01Z', mtime: '1970-01-01T00:00:01Z', uid: 0, gid: 0, uname: 'root', gname: 'root',
    store_dir: '/nix/store', from_image: null, store_layers: layers, customisation_layer: join(dir, 'customisation'), repo_tag: 'synthetic:nixpkgs',
  };
  writeFileSync(join(dir, 'conf.json'), JSON.stringify(conf));
  const python = measure(`python3 ${script} conf.json 2>/dev/null | openssl dgst -sha256`, dir);
  const ours = measure(`${nixdock('stream -q --nixpkgs-conf conf.json')} | openssl dgst -sha256`, dir);
  row('nixpkgs stream_layered_image.py', python.seconds, ctx.floorSeconds, '', `nixdock on the same conf.json: ${ours.seconds.toFixed(2)} s, ${(python.seconds / ours.seconds).toFixed(1)}× faster (target ≥ 7×)`);
}

/** The store paths of each store layer of a `build --json` result, in image order. */
function storeLayers(json: string): string[][] {
  const image = JSON.parse(json).images[0] as { layers: Array<{ kind: string; storePaths: string[] }> };
  return image.layers.filter((l) => l.kind === 'store').map((l) => l.storePaths);
}

function layerCounts(json: string): string {
  const image = JSON.parse(json).images[0];
  return `${image.layersBuilt} layers built, ${image.layersReused} reused`;
}
