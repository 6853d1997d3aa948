import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { DEFAULT_WRAPPER, wrapperShape } from '../../bench/wrapper.js';
import { closureGraph, topologicalOrder } from '../../src/plan/graph.js';
import { hitSets, planCost } from '../../src/plan/cost.js';
import { planLayers } from '../../src/plan/plan.js';
import { popularityOrder } from '../../src/plan/popularity.js';
import type { Closure, LayerGroup } from '../../src/types.js';
import { changedLayers, makeClosure, nameOf, rebuild, shuffled, type Node } from './closures.js';

const MB = 1024 * 1024;
/** maxLayers 100 less the customisation layer. */
const BUDGET = 99;

function pathNamed(c: Closure, name: string): string {
  return [...c.paths.keys()].find((path) => nameOf(path) === name)!;
}

function bytesOf(c: Closure, groups: LayerGroup[]): number {
  return groups.reduce((sum, group) => sum + group.paths.reduce((s, p) => s + c.paths.get(p)!.narSize, 0), 0);
}

function costOf(c: Closure, plan: LayerGroup[]) {
  const graph = closureGraph(c);
  return planCost(graph, hitSets(graph, topologicalOrder(graph)), plan.map((group) => group.paths));
}

/** Issue 14's first shape: image a has contents [app] (app → lib, busybox, …: 5 paths), b has [busybox, lib]. */
const shared: Record<string, Node> = {
  app: { size: 0.2 * MB, refs: ['lib', 'busybox', 'cfg'] },
  lib: { size: 3 * MB, refs: ['zlib'] },
  zlib: { size: 0.1 * MB, refs: [] },
  busybox: { size: 1 * MB, refs: [] },
  cfg: { size: 0.01 * MB, refs: [] },
};
const imageA = makeClosure(shared, ['app']);
const imageB = makeClosure({ lib: shared.lib!, zlib: shared.zlib!, busybox: shared.busybox! }, ['busybox', 'lib']);

/** Issue 14's second shape: a wrapper over 110 top-level packages, 300 paths, ~1 GB. */
const wrapperNodes = wrapperShape();
const wrapper = makeClosure(
  Object.fromEntries(wrapperNodes.map((node) => [node.name, { size: node.bytes, refs: node.deps.map((d) => wrapperNodes[d]!.name) }])),
  ['wrapper'],
);
const topLevel = wrapperNodes.filter((node) => node.name.startsWith('pkg-')).map((node) => pathNamed(wrapper, node.name));

describe('stable layering', () => {
  test('a closure that fits the budget gets one layer per path, in popularity order (as dockerTools)', () => {
    const plan = planLayers(imageA, { strategy: 'stable', budget: BUDGET });
    assert.deepEqual(plan.map((group) => group.paths), popularityOrder(closureGraph(imageA)).map((path) => [path]));
    const popularity = planLayers(imageA, { strategy: 'popularity', budget: BUDGET });
    assert.deepEqual(plan.map((group) => group.paths), popularity.map((group) => group.paths));
  });

  test('two images with common paths share the layer of every common path', () => {
    const layersA = new Set(planLayers(imageA, { strategy: 'stable', budget: BUDGET }).map((group) => group.paths.join('\n')));
    const planB = planLayers(imageB, { strategy: 'stable', budget: BUDGET });
    assert.equal(planB.length, 3);
    for (const group of planB) assert.ok(layersA.has(group.paths.join('\n')), `${group.paths.map(nameOf)} is a layer of both images`);
  });

  test('wrapper shape: the whole budget is used and the mean rebuild stays near the floor, far below popularity', () => {
    assert.equal(wrapper.paths.size, 300);
    const plan = planLayers(wrapper, { strategy: 'stable', budget: BUDGET });
    assert.equal(plan.length, BUDGET);
    const stable = costOf(wrapper, plan);
    const popularity = costOf(wrapper, planLayers(wrapper, { strategy: 'popularity', budget: BUDGET }));
    assert.ok(stable.totalBytes > 0.9 * DEFAULT_WRAPPER.totalBytes);
    assert.ok(stable.meanBytes <= 1.5 * stable.floorMeanBytes, `mean ${stable.meanBytes} vs floor ${stable.floorMeanBytes}`);
    assert.ok(stable.meanBytes * 10 < popularity.meanBytes, `stable ${stable.meanBytes} vs popularity ${popularity.meanBytes}`);
  });

  test('wrapper shape: changing a top-level package rebuilds ≤ 2 layers; over all of them, ≤ 2 % of the closure on average', () => {
    const before = planLayers(wrapper, { strategy: 'stable', budget: BUDGET });
    const total = bytesOf(wrapper, before);
    // What the plan predicts: the layers holding the package or anything that depends on it.
    const layerOf = new Map(before.flatMap((group) => group.paths.map((path) => [path, group] as const)));
    const predicted = (top: string) => new Set([layerOf.get(top)!, layerOf.get(pathNamed(wrapper, 'wrapper'))!]);
    const mean = topLevel.reduce((sum, top) => sum + bytesOf(wrapper, [...predicted(top)]), 0) / topLevel.length;
    assert.ok(mean <= 0.02 * total, `mean ${(mean / MB).toFixed(1)} MB of ${(total / MB).toFixed(0)} MB`);
    // Replanning after the change (as the next build does) keeps every other layer: checked on every 10th package.
    for (const top of topLevel.filter((_, i) => i % 10 === 0)) {
      const after = rebuild(wrapper, top);
      const changed = changedLayers(before, planLayers(after, { strategy: 'stable', budget: BUDGET }));
      assert.ok(changed.length <= 2, `${nameOf(top)}: ${changed.length} layers rebuilt`);
      assert.equal(bytesOf(after, changed), bytesOf(wrapper, [...predicted(top)]), `${nameOf(top)}: rebuilt bytes as predicted`);
    }
  });

  test('when merging, a leaf change re-sends less than with the popularity split (why stable is the default)', () => {
    const after = rebuild(imageA, pathNamed(imageA, 'cfg'));
    const changed = (strategy: 'stable' | 'popularity') =>
      bytesOf(after, changedLayers(planLayers(imageA, { strategy, budget: 3 }), planLayers(after, { strategy, budget: 3 })));
    assert.ok(changed('stable') < changed('popularity'), `stable ${changed('stable')} bytes, popularity ${changed('popularity')}`);
  });

  test('respects any budget: a partition of the closure into at most budget layers', () => {
    for (const budget of [1, 2, 3, 4, 5]) {
      const plan = planLayers(imageA, { strategy: 'stable', budget });
      assert.ok(plan.length <= budget && plan.length === Math.min(budget, 5), `budget ${budget}: ${plan.length} layers`);
      assert.deepEqual(plan.flatMap((group) => group.paths).sort(), [...imageA.paths.keys()].sort(), 'every path exactly once');
    }
  });

  test('same plan for the same closure, whatever the input order', () => {
    for (const budget of [40, BUDGET]) {
      const expected = planLayers(wrapper, { strategy: 'stable', budget });
      for (const seed of [7, 8]) assert.deepEqual(planLayers(shuffled(wrapper, seed), { strategy: 'stable', budget }), expected);
    }
  });

  test('a random 300-path DAG: within budget, a partition, merged groups sorted, deterministic', () => {
    const random = randomClosure(300, 42);
    for (const budget of [3, 20, 99]) {
      const plan = planLayers(random, { strategy: 'stable', budget });
      assert.equal(plan.length, budget);
      const all = plan.flatMap((group) => group.paths);
      assert.equal(new Set(all).size, random.paths.size);
      for (const group of plan) assert.deepEqual(group.paths, [...group.paths].sort());
      assert.deepEqual(planLayers(shuffled(random, budget), { strategy: 'stable', budget }), plan);
    }
  });

  test('a budget below 1 is refused', () => {
    assert.throws(() => planLayers(imageA, { strategy: 'stable', budget: 0 }), /No room for store layers/);
  });
});

/** Heavy-tailed sizes and references only to lower-numbered paths (so the graph is a DAG). */
function randomClosure(count: number, seed: number): Closure {
  let state = seed;
  const next = (): number => {
    state = (state * 1103515245 + 12345) % 2147483648;
    return state / 2147483648;
  };
  const graph: Record<string, Node> = {};
  for (let i = 0; i < count; i++) {
    const refs = new Set<string>();
    const fanout = i === 0 ? 0 : Math.floor(next() * 5);
    for (let r = 0; r < fanout; r++) refs.add(`p${Math.floor(next() * i)}`);
    graph[`p${i}`] = { size: Math.floor(1000 / (next() + 0.001) ** 2), refs: [...refs] };
  }
  return makeClosure(graph, [`p${count - 1}`]);
}
