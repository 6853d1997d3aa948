import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { closureGraph, topologicalOrder } from '../../src/plan/graph.js';
import { hitSets, planCost } from '../../src/plan/cost.js';
import { coarse } from '../../src/plan/stable.js';
import { makeClosure, nameOf } from './closures.js';

describe('rebuild-cost model', () => {
  // app → lib → libc, app → cfg. A change to libc renews libc, lib and app; to cfg: cfg and app.
  const closure = makeClosure(
    { app: { size: 2, refs: ['lib', 'cfg'] }, lib: { size: 10, refs: ['libc'] }, libc: { size: 100, refs: [] }, cfg: { size: 1, refs: [] } },
    ['app'],
  );
  const graph = closureGraph(closure);
  const sets = hitSets(graph, topologicalOrder(graph));
  const named = (...names: string[]) => names.map((name) => graph.paths.find((path) => nameOf(path) === name)!);

  test('one layer per path costs the floor: each change rebuilds the path and its dependents', () => {
    // libc: 100 + 10 + 2, lib: 10 + 2, app: 2, cfg: 1 + 2 → (112 + 12 + 2 + 3) / 4.
    const cost = planCost(graph, sets, graph.paths.map((path) => [path]));
    assert.deepEqual(cost, { meanBytes: 129 / 4, worstBytes: 112, floorMeanBytes: 129 / 4, totalBytes: 113 });
  });

  test('a merged layer is rebuilt by a change to anything its paths depend on', () => {
    // [app cfg] is rebuilt by every change (3 bytes × 4), [lib] by lib and libc, [libc] by libc.
    const cost = planCost(graph, sets, [named('libc'), named('lib'), named('app', 'cfg')]);
    assert.deepEqual(cost, { meanBytes: (100 + 20 + 12) / 4, worstBytes: 113, floorMeanBytes: 129 / 4, totalBytes: 113 });
    const oneLayer = planCost(graph, sets, [graph.paths]);
    assert.equal(oneLayer.meanBytes, 113);
  });

  test('decisions round sizes down to 3 significant bits, exactly', () => {
    assert.deepEqual([0, 7, 8, 9, 15, 1000].map(coarse), [0, 7, 8, 8, 14, 896]);
    assert.equal(coarse(2 ** 52 + 2 ** 51 + 2 ** 50 + 12345), 2 ** 52 + 2 ** 51 + 2 ** 50);
    // A package 1 % bigger after a rebuild usually weighs the same in the planner's decisions.
    assert.equal(coarse(5_000_000), coarse(5_050_000));
  });
});
