/**
 * The wrapper shape of issue 14: a small root (as `buildEnv`, `symlinkJoin` or a launcher script
 * make it) referring to ~110 top-level packages, each below an even share of the closure over the
 * layer budget, over shared base libraries, mid-level libraries used by a few packages, and
 * private dependencies: 300 paths, ~1 GB. Deterministic: every machine gets the same shape. The
 * planner tests use the graph; the benchmark builds it in the Nix store (synthetic.ts).
 */
import { heavyTailedShares, prng, type ShapeNode } from './synthetic.js';

export interface WrapperOptions {
  tops: number;
  base: number;
  mid: number;
  privates: number;
  totalBytes: number;
  totalFiles: number;
}

export const DEFAULT_WRAPPER: WrapperOptions = { tops: 110, base: 24, mid: 60, privates: 105, totalBytes: 1 << 30, totalFiles: 40_000 };

/** Nodes with deps pointing to lower indices only; the last node is the wrapper root. */
export function wrapperShape(opts: WrapperOptions = DEFAULT_WRAPPER): ShapeNode[] {
  const random = prng(14);
  const pick = (from: number, to: number): number => from + Math.floor(random() * (to - from));
  const nodes: ShapeNode[] = [];
  // A draw from an empty range lands on the node itself: dropped (Nix refuses a self-dependency).
  const add = (name: string, deps: number[]): number =>
    nodes.push({ name, bytes: 0, files: 0, deps: [...new Set(deps)].filter((d) => d !== nodes.length).sort((a, b) => a - b) }) - 1;
  const picks = (count: number, from: number, to: number): number[] => Array.from({ length: count }, () => pick(from, to));

  for (let i = 0; i < opts.base; i++) add(`base-${pad(i)}`, i === 0 ? [] : [0, ...picks(pick(0, 3), 0, i)]);
  const midStart = nodes.length;
  for (let i = 0; i < opts.mid; i++) add(`mid-${pad(i)}`, [0, ...picks(pick(1, 3), 0, opts.base), ...picks(pick(0, 2), midStart, midStart + i)]);
  // Private dependencies: each belongs to one top-level package (assigned below).
  const privateStart = nodes.length;
  const owner = Array.from({ length: opts.privates }, () => pick(0, opts.tops));
  for (let i = 0; i < opts.privates; i++) add(`dep-${pad(i)}`, [0, ...picks(pick(0, 3), 0, opts.base)]);
  const topStart = nodes.length;
  for (let t = 0; t < opts.tops; t++) {
    const own = owner.flatMap((o, i) => (o === t ? [privateStart + i] : []));
    add(`pkg-${pad(t)}`, [0, ...picks(pick(1, 5), 0, opts.base), ...picks(pick(0, 4), midStart, privateStart), ...own]);
  }
  // Every library is used by something: one nobody refers to joins a random top-level package.
  const used = new Set(nodes.flatMap((node) => node.deps));
  for (let i = 0; i < topStart; i++) if (!used.has(i)) nodes[pick(topStart, nodes.length)]!.deps.push(i);
  for (const top of nodes.slice(topStart)) top.deps.sort((a, b) => a - b);
  add('wrapper', nodes.slice(topStart).map((_, t) => topStart + t));

  // Bytes: top-level packages 0.2–9 MB (below closure/budget ≈ 10 MB), the wrapper 16 KiB,
  // the rest heavy-tailed: base 40 %, mid 35 %, private 25 % of what is left.
  const tops = nodes.slice(topStart, -1);
  for (const top of tops) top.bytes = Math.round((0.2 + 8.8 * random() ** 3) * 1024 * 1024);
  nodes.at(-1)!.bytes = 16 * 1024;
  const left = opts.totalBytes - tops.reduce((sum, node) => sum + node.bytes, 0) - nodes.at(-1)!.bytes;
  spread(nodes.slice(0, midStart), 0.4 * left, random);
  spread(nodes.slice(midStart, privateStart), 0.35 * left, random);
  spread(nodes.slice(privateStart, topStart), 0.25 * left, random);
  const fileShares = heavyTailedShares(nodes.length, random, 1.5);
  nodes.forEach((node, i) => (node.files = Math.max(1, Math.round(fileShares[i]! * opts.totalFiles))));
  return nodes;
}

function spread(nodes: ShapeNode[], bytes: number, random: () => number): void {
  const shares = heavyTailedShares(nodes.length, random, 1.1);
  nodes.forEach((node, i) => (node.bytes = Math.round(shares[i]! * bytes)));
}

function pad(i: number): string {
  return String(i).padStart(3, '0');
}
