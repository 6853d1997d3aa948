/**
 * The scheduler's state machine with a stand-in build (the only place one is used): each fake
 * build waits for the test to release its "layers", and checks its abort signal between them the
 * way the real orchestrator does.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { NixdockError } from '../../src/errors.js';
import { EventBus, type BuildEvent } from '../../src/events.js';
import { Scheduler, type RunOptions } from '../../src/daemon/scheduler.js';

/** A build of N layers; `step()` finishes the next layer of whichever build is running. */
function fakeBuilds(bus: EventBus, layers = 3) {
  const waiting: Array<() => void> = [];
  const run = async (image: string, { signal, buildId }: RunOptions) => {
    bus.emit({ type: 'build:started', image, buildId, time: Date.now() });
    for (let i = 0; i < layers; i++) {
      await new Promise<void>((resolve) => waiting.push(resolve));
      if (signal.aborted) throw new NixdockError('ABORTED', 'stopped at a layer boundary');
    }
    if (image === 'broken') throw new NixdockError('NIX_FAILED', 'nix-build failed');
    bus.emit({
      type: 'build:succeeded', image, buildId, tag: 't', configDigest: 'sha256:0', layersBuilt: layers, layersReused: 0, bytesWritten: 0, ms: 0, outputs: [],
    });
  };
  const step = async () => {
    for (let i = 0; i < 20 && waiting.length === 0; i++) await new Promise((r) => setImmediate(r));
    waiting.shift()?.();
    await new Promise((r) => setImmediate(r));
  };
  return { run, step };
}

function record(bus: EventBus): string[] {
  const seen: string[] = [];
  bus.on((e: BuildEvent) => seen.push(`${e.type} ${e.buildId}${e.type === 'build:superseded' ? ` by ${e.by}` : ''}`));
  return seen;
}

function ids() {
  let n = 0;
  return () => `b${++n}`;
}

test('idle → running → idle, one build per request', async () => {
  const bus = new EventBus();
  const { run, step } = fakeBuilds(bus, 2);
  const scheduler = new Scheduler(run, bus, ids());
  const seen = record(bus);
  assert.equal(scheduler.stateOf('app'), 'idle');
  assert.equal(scheduler.request('app', 'startup'), 'b1');
  assert.equal(scheduler.stateOf('app'), 'running');
  await step();
  await step();
  await scheduler.idle();
  assert.equal(scheduler.stateOf('app'), 'idle');
  assert.deepEqual(seen, ['build:started b1', 'build:succeeded b1']);
});

test('a newer request supersedes the running build at a layer boundary; later requests fold into one queued build', async () => {
  const bus = new EventBus();
  const { run, step } = fakeBuilds(bus, 3);
  const scheduler = new Scheduler(run, bus, ids());
  const seen = record(bus);
  scheduler.request('app', 'startup');
  await step(); // first layer of b1 done
  assert.equal(scheduler.request('app', 'edit 1'), 'b2');
  assert.equal(scheduler.request('app', 'edit 2'), 'b2', 'a second change joins the queued build');
  assert.equal(scheduler.stateOf('app'), 'queued');
  await step(); // b1 reaches its next boundary and stops
  for (let i = 0; i < 3; i++) await step();
  await scheduler.idle();
  assert.deepEqual(seen, [
    'build:started b1',
    'build:queued b2',
    'build:superseded b1 by b2',
    'build:started b2',
    'build:succeeded b2',
  ]);
});

test('images are scheduled independently and a failure is reported once', async () => {
  const bus = new EventBus();
  const { run, step } = fakeBuilds(bus, 1);
  const scheduler = new Scheduler(run, bus, ids());
  const seen = record(bus);
  scheduler.request('app', 'startup');
  scheduler.request('broken', 'startup');
  assert.equal(scheduler.stateOf('app'), 'running');
  assert.equal(scheduler.stateOf('broken'), 'running');
  await step();
  await step();
  await scheduler.idle();
  assert.deepEqual(seen.sort(), ['build:failed b2', 'build:started b1', 'build:started b2', 'build:succeeded b1']);
});

test('stop() aborts the running build, drops the queued one and refuses new requests', async () => {
  const bus = new EventBus();
  const { run, step } = fakeBuilds(bus, 3);
  const scheduler = new Scheduler(run, bus, ids());
  const seen = record(bus);
  scheduler.request('app', 'startup');
  await step();
  const stopped = scheduler.stop();
  await step();
  await stopped;
  assert.equal(scheduler.stateOf('app'), 'idle');
  assert.deepEqual(seen, ['build:started b1', 'build:superseded b1 by shutdown']);
  assert.throws(() => scheduler.request('app', 'late'), (err: NixdockError) => err.code === 'ABORTED');
});
