/**
 * Issue 5 target: `nixdock push` of the synthetic image to a local docker-registry, cold and again
 * after a one-leaf change. The second push must upload only the changed layers and take ≤ 5 % of
 * the cold push.
 */
import { startRegistry } from '../../test/helpers/registry.js';
import { measure, nixdock, row, writeProject, type BenchContext } from '../measure.js';

interface PushJson {
  bytesUploaded: number;
  blobs: Array<{ kind: 'layer' | 'config'; action: 'uploaded' | 'mounted' | 'skipped' }>;
}

export async function pushBench(ctx: BenchContext): Promise<void> {
  const { project, floorSeconds: floor } = ctx;
  const registry = await startRegistry();
  try {
    writeProject(project, ctx.app);
    measure(nixdock('build --json'), project);
    const cold = pushOnce(project, `${registry.host}/bench/synthetic:cold`);
    row('push cold → local registry', cold.seconds, floor, '', describe(cold.result));

    writeProject(project, ctx.app2);
    measure(nixdock('build --json'), project);
    const leaf = pushOnce(project, `${registry.host}/bench/synthetic:leaf`);
    const share = (leaf.seconds / cold.seconds) * 100;
    row('push after one-leaf change', leaf.seconds, floor, '≤ 5 % cold', `${describe(leaf.result)}; ${share.toFixed(1)} % of the cold push's time`);
  } finally {
    await registry.stop();
  }
}

function pushOnce(project: string, ref: string): { seconds: number; result: PushJson } {
  const run = measure(nixdock(`push synthetic ${ref} --json`), project);
  return { seconds: run.seconds, result: JSON.parse(run.stdout) as PushJson };
}

function describe(result: PushJson): string {
  const layers = result.blobs.filter((b) => b.kind === 'layer');
  const uploaded = layers.filter((b) => b.action === 'uploaded').length;
  return `${(result.bytesUploaded / 2 ** 20).toFixed(1)} MiB uploaded (${uploaded} of ${layers.length} layers)`;
}
