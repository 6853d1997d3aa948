/**
 * Synthetic closures for planner tests: store paths with realistic hashes, sizes and references,
 * and the hash changes Nix makes when one path is rebuilt.
 */
import { createHash } from 'node:crypto';
import type { Closure, LayerGroup, StorePathInfo } from '../../src/types.js';

const ALPHABET = '0123456789abcdfghijklmnpqrsvwxyz';

/** A deterministic 32-char nix-base32 hash for a seed. */
export function fakeHash(seed: string): string {
  const digest = createHash('sha256').update(seed).digest();
  return [...digest.subarray(0, 32)].map((byte) => ALPHABET[byte % 32]).join('');
}

export interface Node {
  size: number;
  refs: string[];
}

/** Builds a closure from `name → { size, refs: names }`; `roots` are names. */
export function makeClosure(nodes: Record<string, Node>, roots: string[], version = ''): Closure {
  const pathOf = (name: string): string => `/nix/store/${fakeHash(name + version)}-${name}`;
  const paths = new Map<string, StorePathInfo>();
  for (const [name, node] of Object.entries(nodes)) {
    paths.set(pathOf(name), { path: pathOf(name), narSize: node.size, references: node.refs.map(pathOf) });
  }
  return { storeDir: '/nix/store', roots: roots.map(pathOf).sort(), paths };
}

/** What Nix does when `changed` is rebuilt: it and every path referring to it (transitively) get new hashes. */
export function rebuild(closure: Closure, changed: string, salt = 'v2'): Closure {
  const affected = new Set([changed]);
  let grew = true;
  while (grew) {
    grew = false;
    for (const info of closure.paths.values()) {
      if (!affected.has(info.path) && info.references.some((ref) => affected.has(ref))) {
        affected.add(info.path);
        grew = true;
      }
    }
  }
  const rename = (path: string): string =>
    affected.has(path) ? path.replace(/\/[0-9a-z]{32}-/, `/${fakeHash(path + salt)}-`) : path;
  const paths = new Map<string, StorePathInfo>();
  for (const info of closure.paths.values()) {
    paths.set(rename(info.path), { ...info, path: rename(info.path), references: info.references.map(rename) });
  }
  return { storeDir: closure.storeDir, roots: closure.roots.map(rename).sort(), paths };
}

/** The same closure with its Map built in a different (seeded) order. */
export function shuffled(closure: Closure, seed: number): Closure {
  const entries = [...closure.paths.entries()];
  let state = seed;
  for (let i = entries.length - 1; i > 0; i--) {
    state = (state * 1103515245 + 12345) % 2147483648;
    const j = state % (i + 1);
    [entries[i], entries[j]] = [entries[j]!, entries[i]!];
  }
  return { ...closure, paths: new Map(entries) };
}

/** Layers of `after` whose content is not a layer of `before` (i.e. would be rebuilt and pushed). */
export function changedLayers(before: LayerGroup[], after: LayerGroup[]): LayerGroup[] {
  const known = new Set(before.map((group) => group.paths.join('\n')));
  return after.filter((group) => !known.has(group.paths.join('\n')));
}

export function nameOf(path: string): string {
  return path.replace(/^\/nix\/store\/[0-9a-z]{32}-/, '');
}
