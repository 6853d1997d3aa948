/** What the orchestrator tells its reporters: streamImage reports a build from build:started to build:succeeded like buildImage. */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { BuildEvent } from '../../src/events.js';
import { collect, exampleProject, LAYERS } from './helpers.js';

/** The event types of one build, with layer events by index. */
const steps = (events: BuildEvent[]) =>
  events.filter((e) => e.type !== 'progress').map((e) => ('index' in e ? `${e.type} ${e.index}` : e.type));

test('streamImage reports build:started, resolve, plan, each layer and build:succeeded; the stream is a docker-archive', async (t) => {
  const o = await exampleProject(t);
  const first = collect();
  const image = await o.stream(first.out);
  assert.deepEqual(steps(o.events), ['build:started', 'resolve:done', 'plan:done', 'layer:built 0', 'layer:built 1', 'layer:built 2', 'build:succeeded']);
  assert.ok(o.events.every((e) => e.buildId === o.events[0]!.buildId && e.image === 'hello'));
  const planned = o.events.find((e) => e.type === 'plan:done');
  assert.equal(planned?.type === 'plan:done' && planned.layers, LAYERS);
  const succeeded = o.events.at(-1)!;
  assert.ok(succeeded.type === 'build:succeeded');
  assert.equal(succeeded.configDigest, image.configDigest);
  assert.deepEqual([succeeded.layersBuilt, succeeded.layersReused], [LAYERS, 0]);
  assert.deepEqual(succeeded.outputs, [{ format: 'stream' }]);

  const file = join(o.project.dir, 'stream.tar');
  writeFileSync(file, first.bytes());
  const manifest = JSON.parse(execFileSync('tar', ['-xOf', file, 'manifest.json'], { encoding: 'utf8' })) as Array<{ Layers: string[] }>;
  assert.equal(manifest[0]!.Layers.length, LAYERS);

  o.events.length = 0;
  const second = collect();
  await o.stream(second.out);
  assert.deepEqual(steps(o.events), ['build:started', 'resolve:done', 'plan:done', 'layer:reused 0', 'layer:reused 1', 'layer:reused 2', 'build:succeeded']);
});
