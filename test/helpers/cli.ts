/**
 * The real `nixdock` CLI as a user runs it: a child process in a temporary project directory,
 * judged by its exit code, stdout/stderr and the files it leaves behind.
 */
import { spawn, spawnSync, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NIX_ENV } from './nix.js';

export const REPO = fileURLToPath(new URL('../..', import.meta.url));
const CLI = join(REPO, 'src', 'cli.ts');
/** tsx by absolute URL: the CLI runs with the temp project as cwd, where `tsx` does not resolve. */
const TSX = import.meta.resolve('tsx');

/** argv for `nixdock ARGS` run from source. */
export function nixdockArgv(args: string[]): string[] {
  return ['--import', TSX, CLI, ...args];
}

export interface CliRun {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `nixdock ARGS` in `cwd` and waits for it. `env` is the whole environment (default: this one, with Nix's binary cache off). */
export function nixdock(cwd: string, args: string[], env: NodeJS.ProcessEnv = NIX_ENV): CliRun {
  const run = spawnSync(process.execPath, nixdockArgv(args), { cwd, env, encoding: 'utf8', maxBuffer: 256 << 20 });
  return { status: run.status, stdout: run.stdout, stderr: run.stderr };
}

/** Starts `nixdock ARGS` in `cwd` without waiting (daemons, processes a test kills). */
export function spawnNixdock(cwd: string, args: string[], options: SpawnOptions = {}): ChildProcess {
  return spawn(process.execPath, nixdockArgv(args), { cwd, env: NIX_ENV, stdio: ['ignore', 'pipe', 'pipe'], ...options });
}
