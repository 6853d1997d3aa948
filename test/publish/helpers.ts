/**
 * The real `nixdock` CLI in temporary projects whose images come from real Nix derivations, as a
 * user runs it: files, exit codes, --json output.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestContext } from 'node:test';
import { NIX_ENV } from '../helpers/nix.js';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const CLI = join(REPO, 'src', 'cli.ts');
/** tsx by absolute URL: the CLI runs with the temp project as cwd, where `tsx` does not resolve. */
const TSX = import.meta.resolve('tsx');

export interface CliRun {
  status: number | null;
  stdout: string;
  stderr: string;
}

export function nixdock(cwd: string, args: string[], env: NodeJS.ProcessEnv = {}): CliRun {
  const run = spawnSync(process.execPath, ['--import', TSX, CLI, ...args], { cwd, env: { ...NIX_ENV, ...env }, encoding: 'utf8', maxBuffer: 1 << 26 });
  return { status: run.status, stdout: run.stdout, stderr: run.stderr };
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
