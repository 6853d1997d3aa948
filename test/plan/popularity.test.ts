import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { planLayers } from '../../src/plan/plan.js';
import { popularityOrder } from '../../src/plan/popularity.js';
import { closureGraph } from '../../src/plan/graph.js';
import { makeClosure, nameOf, shuffled } from './closures.js';

describe('popularity (dockerTools referencesByPopularity)', () => {
  test('ranks paths by how much of the graph depends on them, deepest first (nixpkgs example)', () => {
    // closure-graph.py's documented example: foo → bar, baz; bar → baz; baz → tux. Scores 1, 2, 4, 6.
    const closure = makeClosure(
      { foo: { size: 1, refs: ['bar', 'baz'] }, bar: { size: 1, refs: ['baz'] }, baz: { size: 1, refs: ['tux'] }, tux: { size: 1, refs: [] } },
      ['foo'],
    );
    assert.deepEqual(popularityOrder(closureGraph(closure)).map(nameOf), ['tux', 'baz', 'bar', 'foo']);
  });

  test('breaks ties by name with the hash moved to the end, not by hash', () => {
    const closure = makeClosure(
      { app: { size: 1, refs: ['zlib', 'attr', 'bash'] }, zlib: { size: 1, refs: [] }, attr: { size: 1, refs: [] }, bash: { size: 1, refs: [] } },
      ['app'],
    );
    assert.deepEqual(popularityOrder(closureGraph(closure)).map(nameOf), ['attr', 'bash', 'zlib', 'app']);
    const sameName = makeClosure({ a: { size: 1, refs: ['x'] }, x: { size: 1, refs: [] } }, ['a']);
    // Two paths with the same name: the one with the smaller hash comes first.
    const [x1] = [...sameName.paths.keys()].filter((p) => p.endsWith('-x'));
    const other = x1!.replace(/\/[0-9a-z]{32}-/, '/00000000000000000000000000000000-');
    sameName.paths.set(other, { path: other, narSize: 1, references: [] });
    sameName.paths.get([...sameName.paths.keys()].find((p) => p.endsWith('-a'))!)!.references.push(other);
    assert.deepEqual(popularityOrder(closureGraph(sameName)).slice(0, 2), [other, x1]);
  });

  test('a self-reference does not count', () => {
    const closure = makeClosure({ app: { size: 1, refs: ['app', 'lib'] }, lib: { size: 1, refs: ['lib'] } }, ['app']);
    assert.deepEqual(popularityOrder(closureGraph(closure)).map(nameOf), ['lib', 'app']);
  });

  const chain = makeClosure(
    {
      app: { size: 10, refs: ['libc', 'ssl', 'data'] },
      ssl: { size: 10, refs: ['libc'] },
      data: { size: 10, refs: [] },
      libc: { size: 10, refs: [] },
      tool: { size: 10, refs: ['libc'] },
    },
    ['app', 'tool'],
  );

  test('the first budget − 1 paths get a layer each, the rest share a bulk layer in popularity order', () => {
    const order = popularityOrder(closureGraph(chain));
    const plan = planLayers(chain, { strategy: 'popularity', budget: 3 });
    assert.deepEqual(plan, [
      { paths: [order[0]], reason: 'popular' },
      { paths: [order[1]], reason: 'popular' },
      { paths: order.slice(2), reason: 'bulk' },
    ]);
    assert.equal(nameOf(order[0]!), 'libc');
  });

  test("nixpkgs' documented example: maxLayers 3 gives [F] [E] [D C B G A], the bulk layer in popularity order", () => {
    // closure-graph.py's header: A → B, G; B → C, E; C → D, E; D → F; E → F. Popularity A 1, B 2,
    // C 3, D 4, E 5, F 9, G 2, printed as F E D C B G A; the jq split keeps that order in the bulk layer.
    const closure = makeClosure(
      {
        a: { size: 1, refs: ['b', 'g'] },
        b: { size: 1, refs: ['c', 'e'] },
        c: { size: 1, refs: ['d', 'e'] },
        d: { size: 1, refs: ['f'] },
        e: { size: 1, refs: ['f'] },
        f: { size: 1, refs: [] },
        g: { size: 1, refs: [] },
      },
      ['a'],
    );
    const plan = planLayers(closure, { strategy: 'popularity', budget: 3 });
    assert.deepEqual(plan.map((group) => group.paths.map(nameOf)), [['f'], ['e'], ['d', 'c', 'b', 'g', 'a']]);
  });

  test('every path gets its own layer when the budget allows; budget 1 is one layer', () => {
    assert.equal(planLayers(chain, { strategy: 'popularity', budget: 5 }).length, 5);
    assert.equal(planLayers(chain, { strategy: 'popularity', budget: 100 }).length, 5);
    assert.deepEqual(planLayers(chain, { strategy: 'popularity', budget: 1 }), [{ paths: popularityOrder(closureGraph(chain)), reason: 'bulk' }]);
  });

  test('the same plan whatever the input order', () => {
    const expected = planLayers(chain, { strategy: 'popularity', budget: 3 });
    for (const seed of [1, 2, 3, 4]) assert.deepEqual(planLayers(shuffled(chain, seed), { strategy: 'popularity', budget: 3 }), expected);
  });
});
