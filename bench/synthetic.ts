/**
 * A synthetic closure in the real Nix store, shaped like a real application's: ~300 paths,
 * ~1 GB, ~80 000 files, heavy-tailed sizes (a few big paths, many small ones) and a reference
 * DAG in which every path is reachable from the top-level `app`. Built with raw derivations
 * (python3 as builder, no nixpkgs). `salt` changes only the top-level path, as an app edit does.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface SyntheticOptions {
  paths: number;
  totalBytes: number;
  totalFiles: number;
  /** Changes the top-level path only. */
  salt: string;
}

export const DEFAULT_SYNTHETIC: SyntheticOptions = { paths: 300, totalBytes: 1 << 30, totalFiles: 80_000, salt: 'v1' };

/** Deterministic PRNG (mulberry32) so every machine generates the same closure shape. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Pareto-distributed shares that sum to 1. */
export function heavyTailedShares(n: number, random: () => number, alpha: number): number[] {
  const raw = Array.from({ length: n }, () => 1 / Math.pow(1 - random() * 0.999, 1 / alpha));
  const sum = raw.reduce((a, b) => a + b, 0);
  return raw.map((x) => x / sum);
}

const BUILDER = String.raw`
import os, random
out = os.environ["out"]; seed = int(os.environ["seed"]); nfiles = int(os.environ["nfiles"]); nbytes = int(os.environ["nbytes"])
rng = random.Random(seed)
os.makedirs(out + "/nix-support")
with open(out + "/nix-support/deps", "w") as f:
    f.write(os.environ.get("deps", "") + "\n" + os.environ["salt"] + "\n")
sizes = [rng.paretovariate(1.2) for _ in range(nfiles)]
scale = nbytes / sum(sizes)
for i, s in enumerate(sizes):
    d = "%s/share/d%03d" % (out, i // 200)
    if i % 200 == 0:
        os.makedirs(d)
    with open("%s/f%05d.dat" % (d, i), "wb") as f:
        f.write(rng.randbytes(int(s * scale)))
`;

/** One store path of a shape: its size, file count and dependencies (indices of earlier nodes). */
export interface ShapeNode {
  name: string;
  bytes: number;
  files: number;
  deps: number[];
  /** Changes this path's hash (and its dependents') without changing its size. */
  salt?: string;
}

export function syntheticShape(opts: SyntheticOptions): ShapeNode[] {
  const random = prng(42);
  const byteShares = heavyTailedShares(opts.paths, random, 1.1);
  const fileShares = heavyTailedShares(opts.paths, random, 1.5);
  // deps[i] ⊂ [0, i): lower indices are more basic; every path gets at least one dependent.
  const deps: number[][] = Array.from({ length: opts.paths }, () => []);
  for (let j = 0; j < opts.paths - 1; j++) {
    const dependent = j + 1 + Math.floor(random() * (opts.paths - 1 - j));
    deps[dependent]!.push(j);
    if (random() < 0.5 && j + 1 < opts.paths - 1) deps[j + 1 + Math.floor(random() * (opts.paths - 2 - j))]!.push(j);
  }
  return deps.map((ds, i) => ({
    name: i === opts.paths - 1 ? 'app' : `lib${String(i).padStart(3, '0')}`,
    bytes: Math.round(byteShares[i]! * opts.totalBytes),
    files: Math.max(1, Math.round(fileShares[i]! * opts.totalFiles)),
    deps: [...new Set(ds)].sort((a, b) => a - b),
    ...(i === opts.paths - 1 && { salt: opts.salt }),
  }));
}

export function syntheticExpression(opts: SyntheticOptions): string {
  return shapeExpression(syntheticShape(opts));
}

/** A Nix expression building every node as a raw derivation; it evaluates to the last node. */
export function shapeExpression(nodes: ShapeNode[]): string {
  const bindings = nodes.map((node, i) => {
    const depList = node.deps.map((d) => `\${p${d}}`).join(' ');
    return `  p${i} = derivation {
    name = "${node.name}"; system = builtins.currentSystem; builder = "/usr/bin/python3"; args = [ "-c" builder ];
    seed = "${i}"; nfiles = "${node.files}"; nbytes = "${node.bytes}";
    deps = "${depList}"; salt = "${node.salt ?? 'base'}";
  };`;
  });
  return `let\n  builder = ''${BUILDER}'';\n${bindings.join('\n')}\nin p${nodes.length - 1}\n`;
}

/** Builds a shape in the Nix store; returns the store path of its last node. */
export function buildShape(nodes: ShapeNode[]): string {
  const dir = mkdtempSync(join(tmpdir(), 'nixdock-bench-'));
  const file = join(dir, 'shape.nix');
  writeFileSync(file, shapeExpression(nodes));
  const env = { ...process.env, NIX_CONFIG: 'substituters =\nbuild-users-group =\nsandbox = false' };
  return execFileSync('nix-build', [file, '--no-out-link', '--cores', '2', '-j', '2'], { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim();
}

/** Builds the synthetic closure; returns the top-level store path. */
export function buildSynthetic(opts: SyntheticOptions = DEFAULT_SYNTHETIC): string {
  return buildShape(syntheticShape(opts));
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const top = buildSynthetic({ ...DEFAULT_SYNTHETIC, salt: process.argv[2] ?? DEFAULT_SYNTHETIC.salt });
  process.stdout.write(top + '\n');
}
