/**
 * The closure as a reference graph with a deterministic shape: every list sorted by path, so the
 * planners never depend on the input Map's iteration order (or on locale: plain code-unit order).
 */
import type { Closure } from '../types.js';

export interface ClosureGraph {
  /** Every path in the closure, sorted. */
  paths: string[];
  /** References of each path within the closure, without self-references, sorted. */
  children: ReadonlyMap<string, readonly string[]>;
  /** Paths referring to each path, sorted. */
  parents: ReadonlyMap<string, readonly string[]>;
  /** Paths no other path refers to, sorted. */
  tops: string[];
  narSize: (path: string) => number;
}

export function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export function closureGraph(closure: Closure): ClosureGraph {
  const paths = [...closure.paths.keys()].sort(compareStrings);
  const children = new Map<string, string[]>();
  const parents = new Map<string, string[]>(paths.map((path) => [path, []]));
  for (const path of paths) {
    const refs = [...new Set(closure.paths.get(path)!.references)]
      .filter((ref) => ref !== path && closure.paths.has(ref))
      .sort(compareStrings);
    children.set(path, refs);
    for (const ref of refs) parents.get(ref)!.push(path);
  }
  // Parents were appended in sorted order of `paths`, so each list is already sorted.
  const tops = paths.filter((path) => parents.get(path)!.length === 0);
  return { paths, children, parents, tops, narSize: (path) => closure.paths.get(path)!.narSize };
}

/**
 * Paths with every parent before its children (Nix closures are acyclic apart from
 * self-references; a malformed cycle is broken at the edge that closes it, deterministically).
 */
export function topologicalOrder(graph: ClosureGraph): string[] {
  const visited = new Set<string>();
  const postOrder: string[] = [];
  const visit = (path: string): void => {
    if (visited.has(path)) return;
    visited.add(path);
    for (const child of graph.children.get(path)!) visit(child);
    postOrder.push(path);
  };
  for (const top of graph.tops) visit(top);
  for (const path of graph.paths) visit(path);
  return postOrder.reverse();
}

/**
 * How many paths depend on each path, directly or transitively: the "most-depended-on" measure
 * that puts base-like layers first. Ancestor sets are bitsets, so this stays fast for thousands of paths.
 */
export function dependentCounts(graph: ClosureGraph, order: readonly string[]): Map<string, number> {
  const index = new Map(graph.paths.map((path, i) => [path, i]));
  const words = Math.ceil(graph.paths.length / 32);
  const ancestors = new Map<string, Uint32Array>();
  for (const path of order) {
    const bits = new Uint32Array(words);
    for (const parent of graph.parents.get(path)!) {
      const parentBits = ancestors.get(parent);
      // Missing only for a parent on a (malformed) cycle's closing edge.
      if (parentBits) for (let w = 0; w < words; w++) bits[w]! |= parentBits[w]!;
      const i = index.get(parent)!;
      bits[i >>> 5]! |= 1 << (i & 31);
    }
    ancestors.set(path, bits);
  }
  return new Map(graph.paths.map((path) => [path, popcount(ancestors.get(path)!)]));
}

function popcount(bits: Uint32Array): number {
  let count = 0;
  for (let word of bits) {
    for (; word !== 0; count++) word &= word - 1;
  }
  return count;
}
