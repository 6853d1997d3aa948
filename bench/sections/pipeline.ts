/** Issue 2 and 3 targets: cold stream/build, no-change rebuild, app change, warm stream. */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { measure, nixdock, row, rss, writeProject, type BenchContext } from '../measure.js';

export function pipelineBench(ctx: BenchContext): void {
  const { project, floorSeconds: floor } = ctx;
  writeProject(project, ctx.app);
  // Cold layers, not a cold config: the first load of a config transpiles it (once per edit).
  measure(`${nixdock('stream synthetic -q')} > /dev/null`, project);
  rmSync(join(project, '.nixdock'), { recursive: true, force: true });
  const coldStream = measure(`${nixdock('stream synthetic -q')} | openssl dgst -sha256`, project);
  row('cold stream | openssl', coldStream.seconds, floor, '≤ 2.0×', rss(coldStream) + ' (target ≤ 200 MB)');
  rmSync(join(project, '.nixdock'), { recursive: true, force: true });

  const coldBuild = measure(nixdock('build --json'), project);
  row('cold build → OCI layout', coldBuild.seconds, floor, '', rss(coldBuild));
  const noChange = measure(nixdock('build --json'), project);
  row('no-change rebuild', noChange.seconds, floor, '≤ 0.2×', layerCounts(noChange.stdout));

  writeProject(project, ctx.app2);
  const topChanged = measure(nixdock('build --json'), project);
  row('top-level package changed', topChanged.seconds, floor, '≤ 0.3×', layerCounts(topChanged.stdout) + ' (target ≤ 2 built)');

  const warmStream = measure(`${nixdock('stream synthetic -q')} | openssl dgst -sha256`, project);
  row('warm stream | openssl', warmStream.seconds, floor, '≤ 1.2×', rss(warmStream));
}

function layerCounts(json: string): string {
  const image = JSON.parse(json).images[0];
  return `${image.layersBuilt} layers built, ${image.layersReused} reused`;
}
