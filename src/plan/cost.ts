/**
 * The rebuild-cost model the `stable` planner minimises and `nixdock inspect` reports.
 *
 * In Nix a change to store path p gives p a new hash, and with it every path that depends on p,
 * up to the roots. A layer has to be rebuilt (re-tarred, re-hashed, re-pushed) when it holds any
 * of those paths. Turned around: layer G is rebuilt by a change to p exactly when p is in the
 * closure of G's paths — G itself and everything its paths refer to, transitively. Call that set
 * hits(G). It depends only on G's paths and their references, never on the rest of the image.
 *
 * Weighting: every store path is taken to be equally likely to be the one that changes (a version
 * bump of any one package). The mean rebuilt bytes of a plan is then
 *
 *     Σ over layers G of  bytes(G) · |hits(G)|  /  number of paths
 *
 * and the floor — what any layering must rebuild: the changed path and its dependents — is the
 * same sum with one layer per path. Bytes are narSizes (a layer's tar is its paths' NARs plus
 * headers, within a few percent).
 */
import type { ClosureGraph } from './graph.js';

/** Closure sets of single paths as bitsets over the graph's sorted path list. */
export interface HitSets {
  index: ReadonlyMap<string, number>;
  /** 32-bit words per set. */
  words: number;
  /** closure[i]: the bitset of path i and everything it refers to, transitively. */
  closure: Uint32Array[];
}

export function hitSets(graph: ClosureGraph, order: readonly string[]): HitSets {
  const index = new Map(graph.paths.map((path, i) => [path, i]));
  const words = Math.ceil(graph.paths.length / 32);
  const closure: Uint32Array[] = new Array(graph.paths.length);
  // Children before parents (reverse topological order), so each child's set is ready.
  for (let k = order.length - 1; k >= 0; k--) {
    const i = index.get(order[k]!)!;
    const bits = new Uint32Array(words);
    bits[i >>> 5]! |= 1 << (i & 31);
    for (const child of graph.children.get(order[k]!)!) {
      // Missing only for a child on a (malformed) cycle's closing edge.
      const childBits = closure[index.get(child)!];
      if (childBits) orInto(bits, childBits);
    }
    closure[i] = bits;
  }
  return { index, words, closure };
}

/** The hit set of a group of paths: the union of their closures. */
export function groupHits(sets: HitSets, paths: readonly string[]): Uint32Array {
  const bits = new Uint32Array(sets.words);
  for (const path of paths) orInto(bits, sets.closure[sets.index.get(path)!]!);
  return bits;
}

export function orInto(target: Uint32Array, source: Uint32Array): void {
  for (let w = 0; w < target.length; w++) target[w]! |= source[w]!;
}

export function popcount(bits: Uint32Array): number {
  let count = 0;
  for (let w = 0; w < bits.length; w++) count += popcount32(bits[w]!);
  return count;
}

/** |a ∪ b| without allocating the union. */
export function unionCount(a: Uint32Array, b: Uint32Array): number {
  let count = 0;
  for (let w = 0; w < a.length; w++) count += popcount32(a[w]! | b[w]!);
  return count;
}

function popcount32(x: number): number {
  x -= (x >>> 1) & 0x55555555;
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  return (Math.imul((x + (x >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24) >>> 0;
}

/** What a one-path change costs under a plan, in bytes (narSize). */
export interface PlanCost {
  /** Mean rebuilt bytes over one-path changes, every path weighted alike. */
  meanBytes: number;
  /** The most any one-path change rebuilds. */
  worstBytes: number;
  /** The mean that one layer per path would give: the changed path and its dependents. */
  floorMeanBytes: number;
  /** Sum of narSizes: what rebuilding everything costs. */
  totalBytes: number;
}

export function planCost(graph: ClosureGraph, sets: HitSets, groups: readonly (readonly string[])[]): PlanCost {
  const n = graph.paths.length;
  const rebuilt = new Float64Array(n);
  let total = 0;
  for (const paths of groups) {
    const bytes = paths.reduce((sum, path) => sum + graph.narSize(path), 0);
    total += bytes;
    forEachBit(groupHits(sets, paths), (i) => (rebuilt[i]! += bytes));
  }
  let floor = 0;
  for (const [i, path] of graph.paths.entries()) floor += graph.narSize(path) * popcount(sets.closure[i]!);
  const sum = rebuilt.reduce((a, b) => a + b, 0);
  return {
    meanBytes: n ? sum / n : 0,
    worstBytes: n ? Math.max(...rebuilt) : 0,
    floorMeanBytes: n ? floor / n : 0,
    totalBytes: total,
  };
}

function forEachBit(bits: Uint32Array, visit: (i: number) => void): void {
  for (let w = 0; w < bits.length; w++) {
    for (let word = bits[w]!; word !== 0; word &= word - 1) visit(w * 32 + (31 - Math.clz32(word & -word)));
  }
}
