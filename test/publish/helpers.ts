/**
 * The real `nixdock` CLI in temporary projects whose images come from real Nix derivations, as a
 * user runs it: files, exit codes, --json output.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { nixdock as runNixdock, type CliRun } from '../helpers/cli.js';
import { NIX_ENV } from '../helpers/nix.js';

/** Runs `nixdock ARGS` with these variables added to the test environment. */
export function nixdock(cwd: string, args: string[], env: NodeJS.ProcessEnv = {}): CliRun {
  return runNixdock(cwd, args, { ...NIX_ENV, ...env });
}

/** Runs the CLI with --json and returns the parsed result; fails the test with stderr on a non-zero exit. */
export function nixdockJson<T = any>(cwd: string, args: string[]): T {
  const run = nixdock(cwd, [...args, '--json']);
  if (run.status !== 0) throw new Error(`nixdock ${args.join(' ')} exited ${run.status}:\n${run.stderr}`);
  return JSON.parse(run.stdout) as T;
}

/** A temp dir removed after the test (or suite) that created it. */
export function tempDir(t: Pick<TestContext, 'after'>, prefix = 'nixdock-publish-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Writes nixdock.config.json (real Nix store, OCI output) with the given images. */
export function writeConfig(dir: string, images: unknown[], extra: Record<string, unknown> = {}): void {
  writeFileSync(join(dir, 'nixdock.config.json'), JSON.stringify({ store: 'nix', images, ...extra }, null, 2));
}
