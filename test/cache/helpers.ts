/** Shared fixtures for the index tests: store path infos, a clock, the child writer's layer count. */
import type { StorePathInfo } from '../../src/types.js';
import { sha256Hex } from '../helpers/bytes.js';

/** A clock that moves forward 1 ms on every reading, so "recorded before the gc plan" is never a tie. */
export function steppingClock(start = 1_700_000_000_000): () => number {
  let now = start;
  return () => now++;
}

export function storePaths(prefix: string, count: number): StorePathInfo[] {
  return Array.from({ length: count }, (_, i) => {
    const path = `/nix/store/${sha256Hex(`${prefix}-${i}`).slice(0, 32)}-${prefix}-${i}`;
    return { path, narSize: 1000 + i, narHash: `sha256:${'0'.repeat(52)}`, references: [path] };
  });
}

/** Layer rows per build written by writer-child.ts. */
export const LAYERS_PER_BUILD = 4;
