/**
 * dockerTools' classic layering (nixpkgs' referencesByPopularity, closure-graph.py), reproduced
 * exactly so that the same closure gets the same order as buildLayeredImage/streamLayeredImage:
 *
 * 1. Unfold the reference graph into a tree from the tops (paths nobody refers to); a path
 *    reachable along several chains appears once per chain. Self-references are dropped.
 * 2. Score it bottom-up: contest(forest) gives each path at the forest's top level 1, and adds
 *    (score + 1) for every path scored in each subtree. Deep, widely shared paths (libc) score
 *    highest. Scores grow like the number of chains, so they are BigInts (Python's ints are exact).
 * 3. Order by score, highest first; ties by "package name": the path split at '-', the first part
 *    (store dir + hash) moved to the end, so equal names order by hash last.
 * 4. The first (budget − 1) paths get a layer each; the rest share one bulk layer, in the same
 *    popularity order (nixpkgs' jq split and flattenReferencesGraph's limit_layers both keep it,
 *    and stream_layered_image.py writes a layer's paths in the order given, so the order is part of
 *    the layer's bytes and diff_id).
 *
 * Memory is one score map per path (its descendants): quadratic in the closure size, fine for the
 * hundreds-to-low-thousands of paths real images have.
 */
import type { LayerGroup } from '../types.js';
import { compareStrings, type ClosureGraph } from './graph.js';

type Scores = Map<string, bigint>;

/** Paths ordered by popularity, most popular first. */
export function popularityOrder(graph: ClosureGraph): string[] {
  const memo = new Map<string, Scores>();
  const inProgress = new Set<string>();
  /** contest() of the forest below `path` (its children and their unfolded subtrees). */
  const below = (path: string): Scores => {
    const cached = memo.get(path);
    if (cached) return cached;
    inProgress.add(path);
    // A (malformed) cycle is cut at the edge that closes it.
    const scores = contest(graph.children.get(path)!.filter((child) => !inProgress.has(child)), below);
    inProgress.delete(path);
    memo.set(path, scores);
    return scores;
  };
  const scores = contest(graph.tops, below);
  const ranked = [...scores.entries()].sort(([pathA, a], [pathB, b]) =>
    a === b ? compareStrings(packageName(pathA), packageName(pathB)) : a > b ? -1 : 1,
  );
  const ordered = ranked.map(([path]) => path);
  // Paths only reachable through a cycle are appended, as closure-graph.py appends "missing" paths.
  const missing = graph.paths.filter((path) => !scores.has(path)).sort((a, b) => compareStrings(packageName(a), packageName(b)));
  return [...ordered, ...missing];
}

function contest(forest: readonly string[], below: (path: string) => Scores): Scores {
  const scores: Scores = new Map();
  const add = (path: string, amount: bigint): void => {
    scores.set(path, (scores.get(path) ?? 0n) + amount);
  };
  for (const path of forest) {
    add(path, 1n);
    for (const [subpath, score] of below(path)) add(subpath, score + 1n);
  }
  return scores;
}

/** closure-graph.py's sort key: `/nix/store/<hash>-name-1.0` → `name-1.0-/nix/store/<hash>`. */
export function packageName(path: string): string {
  const parts = path.split('-');
  const start = parts.shift()!;
  return [...parts, start].join('-');
}

export function planPopularity(graph: ClosureGraph, budget: number): LayerGroup[] {
  const ordered = popularityOrder(graph);
  if (ordered.length <= budget) return ordered.map((path) => ({ paths: [path], reason: 'popular' }));
  const singles = ordered.slice(0, budget - 1).map((path) => ({ paths: [path], reason: 'popular' }));
  return [...singles, { paths: ordered.slice(budget - 1), reason: 'bulk' }];
}
