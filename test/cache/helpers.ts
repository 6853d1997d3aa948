/** Shared fixtures for the index tests: temp cache dirs that clean themselves up, digests, a clock. */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import type { Digest, StorePathInfo } from '../../src/types.js';

export function tempDir(t: TestContext, prefix = 'nixdock-index-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export function sha256(data: string | Buffer): Digest {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

/** A clock that moves forward 1 ms on every reading, so "recorded before the gc plan" is never a tie. */
export function steppingClock(start = 1_700_000_000_000): () => number {
  let now = start;
  return () => now++;
}

export function storePaths(prefix: string, count: number): StorePathInfo[] {
  return Array.from({ length: count }, (_, i) => {
    const path = `/nix/store/${createHash('sha256').update(`${prefix}-${i}`).digest('hex').slice(0, 32)}-${prefix}-${i}`;
    return { path, narSize: 1000 + i, narHash: `sha256:${'0'.repeat(52)}`, references: [path] };
  });
}

/** Layer rows per build written by writer-child.ts. */
export const LAYERS_PER_BUILD = 4;
