/**
 * Pushes of the synthetic image to a local docker-registry (each into an empty repository, so
 * every blob is uploaded), against `skopeo copy` of the same OCI layout in the same run. The
 * image has the config's default compression, none: layers are uncompressed tars, and skopeo
 * copies them as they are (NIXDOCK_BENCH_PUSH_COMPRESSION=gzip|zstd pushes compressed layers:
 * the layout's blobs for skopeo, tar + compress + upload for the cold fresh-checkout push). Each row also prints CPU seconds (nixdock's or skopeo's own, not the
 * registry's) and nixdock's registry round trips, which a busy machine does not stretch:
 *   - issue 10: a cold push at the speed of the hardware (target: nixdock ≤ skopeo), both from
 *     the layout `nixdock build` wrote and from a fresh checkout (no .nixdock, no out/: tar +
 *     gzip on all cores + upload);
 *   - issue 10: the unchanged image pushed again from a fresh checkout (no build first):
 *     ≤ 5 % of the cold push, 0 bytes uploaded, 0 layers tarred;
 *   - issue 5: after a one-leaf change only the changed layers are uploaded, ≤ 5 % of the cold push.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { startRegistry } from '../../test/helpers/registry.js';
import { measure, nixdock, row, timed, writeProject, type BenchContext } from '../measure.js';

interface PushJson {
  bytesUploaded: number;
  layersTarred?: number;
  requests?: number;
  blobs: Array<{ kind: 'layer' | 'config'; action: 'uploaded' | 'mounted' | 'skipped' }>;
}

export async function pushBench(ctx: BenchContext): Promise<void> {
  const { project, floorSeconds: floor } = ctx;
  const registry = await startRegistry();
  try {
    const compression = pushCompression();
    writeProject(project, ctx.app, compression);
    const built = JSON.parse(measure(nixdock('build --json'), project).stdout) as { images: Array<{ tag: string }> };
    const skopeo = measure(
      timed(`skopeo copy -q --insecure-policy --dest-tls-verify=false oci:out/oci:${built.images[0]!.tag} docker://${registry.host}/bench/skopeo:cold`),
      project,
    );
    row('skopeo copy oci:LAYOUT → local registry', skopeo.seconds, floor, '', `the same blobs, uploaded by skopeo; ${skopeo.cpuSeconds.toFixed(2)} CPU s`);
    const fromLayout = pushOnce(project, `${registry.host}/bench/layout:cold`);
    row('push cold after build (layout blobs)', fromLayout.seconds, floor, '≤ skopeo', `${describe(fromLayout.result)}; ${ratio(fromLayout.seconds, skopeo.seconds)} skopeo's time`);

    forget(project);
    const cold = pushOnce(project, `${registry.host}/bench/synthetic:cold`);
    row(`push cold, fresh checkout (tar${compression && compression !== 'none' ? `+${compression}` : ''}+upload)`, cold.seconds, floor, '≤ skopeo', `${describe(cold.result)}; ${ratio(cold.seconds, skopeo.seconds)} skopeo's time`);

    forget(project);
    const again = pushOnce(project, `${registry.host}/bench/synthetic:cold`);
    row('push unchanged, fresh checkout', again.seconds, floor, '≤ 5 % cold, 0 B', `${describe(again.result)}; ${ratio(again.seconds, cold.seconds)} of the cold push's time`);

    writeProject(project, ctx.app2, compression);
    measure(nixdock('build --json'), project);
    const leaf = pushOnce(project, `${registry.host}/bench/synthetic:leaf`);
    row('push after one-leaf change', leaf.seconds, floor, '≤ 5 % cold', `${describe(leaf.result)}; ${ratio(leaf.seconds, cold.seconds)} of the cold push's time`);
  } finally {
    await registry.stop();
  }
}

function pushCompression(): 'none' | 'gzip' | 'zstd' | undefined {
  const value = process.env.NIXDOCK_BENCH_PUSH_COMPRESSION;
  if (value === undefined || value === '') return undefined;
  if (value === 'none' || value === 'gzip' || value === 'zstd') return value;
  throw new Error(`NIXDOCK_BENCH_PUSH_COMPRESSION=${value}: expected none, gzip or zstd`);
}

/** What a CI machine's fresh checkout lacks: the build cache and the outputs. */
function forget(project: string): void {
  rmSync(join(project, '.nixdock'), { recursive: true, force: true });
  rmSync(join(project, 'out'), { recursive: true, force: true });
}

type Measured = PushJson & { cpuSeconds: number; peakRssMb: number };

function pushOnce(project: string, ref: string): { seconds: number; result: Measured } {
  const run = measure(nixdock(`push synthetic ${ref} --json`), project);
  return { seconds: run.seconds, result: { ...(JSON.parse(run.stdout) as PushJson), cpuSeconds: run.cpuSeconds, peakRssMb: run.peakRssMb } };
}

function ratio(seconds: number, of: number): string {
  return `${((seconds / of) * 100).toFixed(1)} %`;
}

function describe(result: Measured): string {
  const layers = result.blobs.filter((b) => b.kind === 'layer');
  const uploaded = layers.filter((b) => b.action === 'uploaded').length;
  const tarred = result.layersTarred === undefined ? '' : `, ${result.layersTarred} tarred`;
  const requests = result.requests === undefined ? '' : `, ${result.requests} requests`;
  return `${(result.bytesUploaded / 2 ** 20).toFixed(1)} MiB uploaded (${uploaded} of ${layers.length} layers${tarred}${requests}), ${result.cpuSeconds.toFixed(2)} CPU s, peak RSS ${result.peakRssMb.toFixed(0)} MB`;
}
