/**
 * The default layering, 'stable': use the whole layer budget, keep layers shared between images,
 * and keep what a one-path change rebuilds close to what Nix itself changes.
 *
 * 1. Fits (paths ≤ budget): one layer per store path, in popularity order — dockerTools' layers
 *    exactly, so images built from the same package set (with nixdock or with dockerTools) share
 *    every layer of their common paths.
 * 2. Does not fit: start from one group per path and repeatedly merge the two groups whose merge
 *    adds the least to the mean rebuild cost of cost.ts, until the groups fit. Merging X and Y adds
 *
 *        bytes(X) · |hits(Y) \ hits(X)|  +  bytes(Y) · |hits(X) \ hits(Y)|
 *
 *    (X is now also rebuilt by the changes that used to hit only Y, and the other way round). So a
 *    path joins its only dependent almost for free, tiny paths join each other cheaply, and big
 *    independent packages stay apart. The price depends only on the two groups' paths and their
 *    references, not on the rest of the image, so two images with a common sub-closure tend to
 *    make the same merges in it; only how many merges happen depends on the whole image.
 *    - Decisions use sizes rounded down to 3 significant bits (steps of 12–25 %): a rebuilt
 *      package is rarely exactly as big as before, and a byte-exact comparison would let that
 *      reshuffle unrelated groups (and rebuild their layers) on the next build.
 *    - Equal prices are broken by package name (closure-graph.py's key: name first, hash last), so
 *      a new hash for a changed path does not reorder anything else.
 *    Each step takes the cheapest pair over all groups, kept as every group's best partner.
 * 3. Order: groups by the popularity rank of their most popular path (base-like first, as
 *    dockerTools orders them). A merged group's paths are sorted by path, which depends on the
 *    group alone, so the same group is the same tar in every image.
 * Nothing depends on input order, locale or machine: the graph is sorted and all arithmetic exact.
 */
import type { LayerGroup } from '../types.js';
import { compareStrings, topologicalOrder, type ClosureGraph } from './graph.js';
import { hitSets, orInto, popcount, unionCount } from './cost.js';
import { packageName, popularityOrder } from './popularity.js';

export function planStable(graph: ClosureGraph, budget: number): LayerGroup[] {
  const order = popularityOrder(graph);
  if (graph.paths.length <= budget) return order.map((path) => ({ paths: [path], reason: 'path' }));
  const rank = new Map(order.map((path, i) => [path, i]));
  const groups = mergeToBudget(graph, budget).map((paths) => paths.sort(compareStrings));
  const firstRank = (paths: string[]) => Math.min(...paths.map((path) => rank.get(path)!));
  return groups
    .sort((a, b) => firstRank(a) - firstRank(b))
    .map((paths) => ({ paths, reason: paths.length === 1 ? 'path' : 'merged' }));
}

/** Greedy agglomeration: the groups (lists of paths) after merging down to `budget`. */
function mergeToBudget(graph: ClosureGraph, budget: number): string[][] {
  const s = initialGroups(graph);
  const n = graph.paths.length;
  for (let a = 0; a < n; a++) {
    for (let b = a + 1; b < n; b++) {
      const p = price(s, a, b);
      offer(s, a, b, p);
      offer(s, b, a, p);
    }
  }
  for (let alive = n; alive > budget; alive--) {
    const [x, y] = cheapestPair(s);
    merge(s, x, y);
    for (let z = 0; z < n; z++) {
      if (z === x || !s.alive[z]) continue;
      const p = price(s, x, z);
      offer(s, x, z, p);
      offer(s, z, x, p);
    }
  }
  return s.paths.filter((_, i) => s.alive[i]);
}

/**
 * Candidates kept per group. Every group keeps its cheapest partners, not just the cheapest one:
 * a tiny path is the cheapest partner of nearly every group, and recomputing all of them each
 * time it merged made planning cubic in the number of paths.
 */
const CANDIDATES = 16;

interface Candidate {
  partner: number;
  pair: Bound;
  /** The partner's version when priced; a merge into the partner makes the price stale. */
  version: number;
}

/** Groups by slot; a merge keeps one slot (its version goes up) and retires the other. */
interface State {
  paths: string[][];
  bytes: number[];
  /** Bytes rounded for decisions (see the header). */
  weight: number[];
  hits: Uint32Array[];
  hitCount: number[];
  /** Tie-break key: the smallest package-name rank among the group's paths. */
  key: number[];
  alive: boolean[];
  version: number[];
  /** Each group's cheapest partners, cheapest first (entries may have gone stale). */
  candidates: Candidate[][];
  /** Every partner not in `candidates` comes after this pair in pair order. */
  bound: Bound[];
}

/** A pair's place in pair order: price, then the two groups' keys, smaller first. */
interface Bound {
  price: number;
  lo: number;
  hi: number;
}

const NO_BOUND: Bound = { price: Infinity, lo: 0, hi: 0 };

function initialGroups(graph: ClosureGraph): State {
  const sets = hitSets(graph, topologicalOrder(graph));
  const byName = [...graph.paths].sort((a, b) => compareStrings(packageName(a), packageName(b)));
  const nameRank = new Map(byName.map((path, i) => [path, i]));
  const bytes = graph.paths.map((path) => graph.narSize(path));
  return {
    paths: graph.paths.map((path) => [path]),
    bytes,
    weight: bytes.map(coarse),
    hits: sets.closure.map((bits) => Uint32Array.from(bits)),
    hitCount: sets.closure.map(popcount),
    key: graph.paths.map((path) => nameRank.get(path)!),
    alive: graph.paths.map(() => true),
    version: graph.paths.map(() => 0),
    candidates: graph.paths.map(() => []),
    bound: graph.paths.map(() => NO_BOUND),
  };
}

/** `bytes` with all but its 3 most significant bits cleared (exact for integers below 2^53). */
export function coarse(bytes: number): number {
  let scale = 1;
  let top = Math.floor(bytes);
  while (top >= 8) {
    top = Math.floor(top / 2);
    scale *= 2;
  }
  return top * scale;
}

function price(s: State, a: number, b: number): number {
  const union = unionCount(s.hits[a]!, s.hits[b]!);
  return s.weight[a]! * (union - s.hitCount[a]!) + s.weight[b]! * (union - s.hitCount[b]!);
}

/** Pair order: by price, then by the two groups' keys (smaller first), so ties never depend on slots. */
function before(price: number, lo: number, hi: number, y: Bound): boolean {
  if (price !== y.price) return price < y.price;
  return lo !== y.lo ? lo < y.lo : hi < y.hi;
}

/** Records that merging a with b costs p, if it is among a's cheapest. */
function offer(s: State, a: number, b: number, p: number): void {
  const lo = Math.min(s.key[a]!, s.key[b]!);
  const hi = Math.max(s.key[a]!, s.key[b]!);
  if (!before(p, lo, hi, s.bound[a]!)) return;
  const list = s.candidates[a]!;
  let at = list.length;
  while (at > 0 && before(p, lo, hi, list[at - 1]!.pair)) at--;
  list.splice(at, 0, { partner: b, pair: { price: p, lo, hi }, version: s.version[b]! });
  if (list.length > CANDIDATES) {
    const dropped = list.pop()!.pair;
    if (earlier(dropped, s.bound[a]!)) s.bound[a] = dropped;
  }
}

function earlier(x: Bound, y: Bound): boolean {
  return before(x.price, x.lo, x.hi, y);
}

/** a's cheapest live candidate, dropping stale ones (their partners were offered again when they changed). */
function head(s: State, a: number): Candidate | undefined {
  const list = s.candidates[a]!;
  while (list.length > 0 && (!s.alive[list[0]!.partner] || s.version[list[0]!.partner] !== list[0]!.version)) list.shift();
  return list[0];
}

/** Prices a against every live group again. */
function reprice(s: State, a: number): void {
  s.candidates[a] = [];
  s.bound[a] = NO_BOUND;
  for (let b = 0; b < s.alive.length; b++) if (b !== a && s.alive[b]) offer(s, a, b, price(s, a, b));
}

/**
 * The cheapest merge of all. A group's head candidate is its certain best when it comes before the
 * group's bound; otherwise the bound is only a lower bound, and the group is repriced (which makes
 * its head certain) when that bound could beat the best certain pair.
 */
function cheapestPair(s: State): [number, number] {
  for (;;) {
    let best: Candidate | undefined;
    let owner = -1;
    const unsure: number[] = [];
    for (let a = 0; a < s.alive.length; a++) {
      if (!s.alive[a]) continue;
      const top = head(s, a);
      if (top && earlier(top.pair, s.bound[a]!)) {
        if (!best || earlier(top.pair, best.pair)) [best, owner] = [top, a];
      } else if (top || s.bound[a]!.price < Infinity) unsure.push(a);
    }
    const beatable = unsure.filter((a) => !best || !earlier(best.pair, s.bound[a]!));
    if (beatable.length === 0) return [owner, best!.partner];
    for (const a of beatable) reprice(s, a);
  }
}

function merge(s: State, x: number, y: number): void {
  s.paths[x] = [...s.paths[x]!, ...s.paths[y]!];
  s.bytes[x]! += s.bytes[y]!;
  s.weight[x] = coarse(s.bytes[x]!);
  orInto(s.hits[x]!, s.hits[y]!);
  s.hitCount[x] = popcount(s.hits[x]!);
  s.key[x] = Math.min(s.key[x]!, s.key[y]!);
  s.version[x]!++;
  s.alive[y] = false;
  s.paths[y] = [];
  s.candidates[x] = [];
  s.bound[x] = NO_BOUND;
  s.candidates[y] = [];
}
