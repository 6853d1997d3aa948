/**
 * The default layering, 'stable': layers that stay the same when a small part of the closure
 * changes, so rebuilds and pushes cost what changed.
 *
 * Nix gives a changed path a new hash, and with it every path above it up to the roots. A plan is
 * stable when such a chain of changed paths falls into few layers. So:
 *
 * 1. Anchors. The roots (asked-for paths, and any path nothing refers to) and the big paths are
 *    anchors. A path is big when its narSize is at least an even share of the closure over the
 *    budget (total narSize / budget): such a path would dominate any group it joined, and at most
 *    `budget` paths can be that big, so anchors alone never exceed the budget by much.
 * 2. Owners. Every other (small) path is owned by the nearest anchors above it: the anchors that
 *    reach it without passing through another anchor. Computed in one pass in topological order.
 * 3. Groups.
 *    - each root gets a layer of its own ('root') — the app is what changes most often, and an
 *      edit to it then re-sends nothing else;
 *    - small paths owned by a single root form that root's 'leaf' layer;
 *    - each big non-root path shares its layer with the small paths only it owns ('big'): when
 *      one of those changes the big path's hash changes too, so keeping them apart would only
 *      add a second changed layer;
 *    - small paths owned by several anchors are grouped by that exact owner set ('shared'), the
 *      way nixpkgs' newer auto-layering groups small paths by which big paths use them.
 *    Changing a leaf used (through small paths) by one root therefore changes 2 layers: the root's
 *    leaf layer and the root. Under a big path it changes that path's layer and the layer of
 *    whatever refers to the big path (the root, when it refers to it directly).
 * 4. Budget. While there are more groups than the budget, the two smallest groups (by narSize)
 *    are merged ('merged'); root layers are merged last, because they change most often.
 * 5. Order. Base-like first: groups holding a root go last, the others by how many paths depend
 *    (transitively) on their most-depended-on path, most first; ties by first path.
 *    Paths within a group are sorted. Nothing depends on input order, locale or machine.
 */
import type { Closure, LayerGroup } from '../types.js';
import { compareStrings, dependentCounts, topologicalOrder, type ClosureGraph } from './graph.js';

interface Group {
  paths: string[];
  reason: string;
  size: number;
  hasRoot: boolean;
}

export function planStable(closure: Closure, graph: ClosureGraph, budget: number): LayerGroup[] {
  const order = topologicalOrder(graph);
  const roots = rootSet(closure, graph);
  const big = bigPaths(graph, budget, roots);
  const owners = nearestAnchors(graph, order, (path) => roots.has(path) || big.has(path));
  const groups = mergeToBudget(initialGroups(graph, roots, big, owners), budget);
  return orderGroups(groups, dependentCounts(graph, order)).map(({ paths, reason }) => ({ paths, reason }));
}

function rootSet(closure: Closure, graph: ClosureGraph): Set<string> {
  return new Set([...graph.tops, ...closure.roots.filter((root) => closure.paths.has(root))]);
}

function bigPaths(graph: ClosureGraph, budget: number, roots: ReadonlySet<string>): Set<string> {
  const total = graph.paths.reduce((sum, path) => sum + graph.narSize(path), 0);
  const threshold = total / budget;
  return new Set(graph.paths.filter((path) => !roots.has(path) && graph.narSize(path) >= threshold));
}

/** For each non-anchor path, the sorted set of nearest anchors above it. */
function nearestAnchors(graph: ClosureGraph, order: readonly string[], isAnchor: (path: string) => boolean): Map<string, string[]> {
  const owners = new Map<string, string[]>();
  for (const path of order) {
    if (isAnchor(path)) continue;
    const found = new Set<string>();
    for (const parent of graph.parents.get(path)!) {
      if (isAnchor(parent)) found.add(parent);
      else for (const owner of owners.get(parent) ?? []) found.add(owner);
    }
    owners.set(path, [...found].sort(compareStrings));
  }
  return owners;
}

function initialGroups(graph: ClosureGraph, roots: ReadonlySet<string>, big: ReadonlySet<string>, owners: Map<string, string[]>): Group[] {
  const byKey = new Map<string, { paths: string[]; reason: string }>();
  const addTo = (key: string, reason: string, path: string): void => {
    const group = byKey.get(key) ?? { paths: [], reason };
    group.paths.push(path);
    byKey.set(key, group);
  };
  for (const path of graph.paths) {
    if (roots.has(path)) addTo(`root\n${path}`, 'root', path);
    else if (big.has(path)) addTo(`big\n${path}`, 'big', path);
    else {
      const pathOwners = owners.get(path)!;
      const [only] = pathOwners;
      if (pathOwners.length === 1 && big.has(only!)) addTo(`big\n${only}`, 'big', path);
      else if (pathOwners.length === 1) addTo(`leaf\n${only}`, 'leaf', path);
      else addTo(`shared\n${pathOwners.join('\n')}`, 'shared', path);
    }
  }
  return [...byKey.values()].map(({ paths, reason }) => ({
    paths: paths.sort(compareStrings),
    reason,
    size: paths.reduce((sum, path) => sum + graph.narSize(path), 0),
    hasRoot: paths.some((path) => roots.has(path)),
  }));
}

function mergeToBudget(groups: Group[], budget: number): Group[] {
  const merged = [...groups];
  while (merged.length > budget) {
    merged.sort(mergeFirst);
    const [a, b] = merged.splice(0, 2) as [Group, Group];
    merged.push({
      paths: [...a.paths, ...b.paths].sort(compareStrings),
      reason: 'merged',
      size: a.size + b.size,
      hasRoot: a.hasRoot || b.hasRoot,
    });
  }
  return merged;
}

function mergeFirst(a: Group, b: Group): number {
  return Number(a.hasRoot) - Number(b.hasRoot) || a.size - b.size || compareStrings(a.paths[0]!, b.paths[0]!);
}

function orderGroups(groups: Group[], dependents: ReadonlyMap<string, number>): Group[] {
  const mostDepended = new Map(groups.map((group) => [group, Math.max(...group.paths.map((path) => dependents.get(path)!))]));
  return [...groups].sort(
    (a, b) =>
      Number(a.hasRoot) - Number(b.hasRoot) ||
      mostDepended.get(b)! - mostDepended.get(a)! ||
      compareStrings(a.paths[0]!, b.paths[0]!),
  );
}
