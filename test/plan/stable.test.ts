import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { planLayers } from '../../src/plan/plan.js';
import type { Closure, LayerGroup } from '../../src/types.js';
import { changedLayers, makeClosure, nameOf, rebuild, shuffled, type Node } from './closures.js';

const MB = 1024 * 1024;

/**
 * An app closure shaped like real ones: a big libc under everything, two big runtimes, small
 * libraries used by one or several of them, and small paths only the app uses.
 */
const nodes: Record<string, Node> = {
  app: { size: 0.2 * MB, refs: ['python', 'node', 'libA', 'libB', 'cfg'] },
  python: { size: 50 * MB, refs: ['libc', 'zlib', 'openssl', 'py-small'] },
  node: { size: 30 * MB, refs: ['libc', 'zlib', 'openssl'] },
  libc: { size: 30 * MB, refs: [] },
  zlib: { size: 0.1 * MB, refs: ['libc'] },
  openssl: { size: 4 * MB, refs: ['libc'] },
  'py-small': { size: 0.3 * MB, refs: ['py-leaf'] },
  'py-leaf': { size: 0.1 * MB, refs: [] },
  libA: { size: 0.5 * MB, refs: ['leafA'] },
  leafA: { size: 0.2 * MB, refs: ['leafA2'] },
  leafA2: { size: 0.05 * MB, refs: [] },
  libB: { size: 0.4 * MB, refs: ['libc'] },
  cfg: { size: 0.01 * MB, refs: [] },
};
const closure = makeClosure(nodes, ['app']);
const BUDGET = 10;

function pathNamed(c: Closure, name: string): string {
  return [...c.paths.keys()].find((path) => nameOf(path) === name)!;
}

function names(plan: LayerGroup[]): string[][] {
  return plan.map((group) => group.paths.map(nameOf));
}

describe('stable layering', () => {
  test('big paths get layers of their own; small paths group by who uses them; the root is alone and last', () => {
    const plan = planLayers(closure, { strategy: 'stable', budget: BUDGET });
    const sortedNames = (group: string[]) => [...group].sort();
    assert.deepEqual(
      names(plan).map(sortedNames).sort(),
      [['libc'], ['openssl', 'zlib'], ['py-leaf', 'py-small', 'python'], ['node'], ['cfg', 'leafA', 'leafA2', 'libA', 'libB'], ['app']]
        .map(sortedNames)
        .sort(),
    );
    assert.deepEqual(names(plan)[0], ['libc'], 'the most depended-on path comes first');
    assert.deepEqual(names(plan).at(-1), ['app'], 'the root comes last');
    const reasons = Object.fromEntries(plan.map((group) => [group.paths.map(nameOf).sort().join(','), group.reason]));
    assert.deepEqual(reasons, {
      libc: 'big',
      'openssl,zlib': 'shared',
      'py-leaf,py-small,python': 'big',
      node: 'big',
      'cfg,leafA,leafA2,libA,libB': 'leaf',
      app: 'root',
    });
  });

  for (const [leaf, expected] of [['leafA2', 2], ['cfg', 2], ['py-leaf', 2], ['app', 1]] as const) {
    test(`rebuilding ${leaf} (and everything above it, as Nix does) changes ${expected} layer(s)`, () => {
      const before = planLayers(closure, { strategy: 'stable', budget: BUDGET });
      const after = planLayers(rebuild(closure, pathNamed(closure, leaf)), { strategy: 'stable', budget: BUDGET });
      assert.equal(changedLayers(before, after).length, expected);
      assert.equal(after.length, before.length);
    });
  }

  test('the classic popularity split changes more for the same leaf change (why stable is the default)', () => {
    const budget = 5;
    const changed = (strategy: 'stable' | 'popularity') =>
      changedLayers(
        planLayers(closure, { strategy, budget }),
        planLayers(rebuild(closure, pathNamed(closure, 'leafA2')), { strategy, budget }),
      ).reduce((bytes, group) => bytes + group.paths.reduce((sum, p) => sum + nodes[nameOf(p)]!.size, 0), 0);
    assert.ok(changed('stable') < changed('popularity'), `stable re-sends ${changed('stable')} bytes, popularity ${changed('popularity')}`);
  });

  test('respects the budget by merging the smallest groups, keeping the root for last', () => {
    for (const budget of [1, 2, 3, 4, 5]) {
      const plan = planLayers(closure, { strategy: 'stable', budget });
      assert.ok(plan.length <= budget, `budget ${budget}: ${plan.length} layers`);
      assert.deepEqual(plan.flatMap((group) => group.paths).sort(), [...closure.paths.keys()].sort(), 'every path exactly once');
      if (budget >= 2) assert.deepEqual(names(plan).at(-1), ['app']);
    }
    assert.equal(planLayers(closure, { strategy: 'stable', budget: 1 }).length, 1);
  });

  test('same plan for the same closure, whatever the input order', () => {
    const expected = planLayers(closure, { strategy: 'stable', budget: 4 });
    for (const seed of [7, 8, 9, 10]) assert.deepEqual(planLayers(shuffled(closure, seed), { strategy: 'stable', budget: 4 }), expected);
  });

  test('a random 300-path DAG: within budget, a partition, sorted groups, deterministic', () => {
    const random = randomClosure(300, 42);
    for (const budget of [3, 20, 99]) {
      const plan = planLayers(random, { strategy: 'stable', budget });
      assert.ok(plan.length <= budget);
      const all = plan.flatMap((group) => group.paths);
      assert.equal(new Set(all).size, random.paths.size);
      for (const group of plan) assert.deepEqual(group.paths, [...group.paths].sort());
      assert.deepEqual(planLayers(shuffled(random, budget), { strategy: 'stable', budget }), plan);
    }
  });

  test('a budget below 1 is refused', () => {
    assert.throws(() => planLayers(closure, { strategy: 'stable', budget: 0 }), /No room for store layers/);
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
