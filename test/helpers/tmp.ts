/** Temporary directories that go away with the test (or suite) that made them. */
import { chmodSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * Where the removal is registered: a TestContext, `{ after }` from node:test called in a describe
 * body (not inside a before() hook: node:test runs an after() registered there as soon as the
 * hook ends), or a cleanupList.
 */
export interface Cleanup {
  after(fn: () => unknown): void;
}

/** Cleanups a file's own after() hook runs when it chooses (e.g. once the daemon using the files has stopped). */
export function cleanupList(): Cleanup & { run(): Promise<void> } {
  const fns: Array<() => unknown> = [];
  return {
    after: (fn) => void fns.push(fn),
    run: async () => {
      for (const fn of fns.splice(0).reverse()) await fn();
    },
  };
}

/**
 * A new directory under the system temp dir, removed after the test. Copies of store paths are
 * read-only (0555 directories), so removal makes the tree writable first when it has to.
 */
export function tempDir(t: Cleanup, prefix = 'nixdock-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.after(() => removeTree(dir));
  return dir;
}

/** rm -rf, also of trees whose directories are not writable (as an unprivileged user). */
export function removeTree(dir: string): void {
  try {
    rmSync(dir, { recursive: true, force: true });
  } catch {
    makeWritable(dir);
    rmSync(dir, { recursive: true, force: true });
  }
}

function makeWritable(dir: string): void {
  chmodSync(dir, 0o755);
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.isDirectory()) makeWritable(join(dir, entry.name));
  }
}
