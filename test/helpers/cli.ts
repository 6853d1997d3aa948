/**
 * The real `nixdock` CLI as a user runs it: a child process in a temporary project directory,
 * judged by its exit code, stdout/stderr and the files it leaves behind. `--json` output is typed
 * by the commands' own exported JSON types, so a changed shape breaks the typecheck, not a test.
 */
import { spawn, spawnSync, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BuildJson } from '../../src/commands/build.js';
import type { ExportJson } from '../../src/commands/export.js';
import type { GcJson } from '../../src/commands/gc.js';
import type { InspectJson } from '../../src/commands/inspect.js';
import type { JsonFailure } from '../../src/commands/json.js';
import type { PullJson } from '../../src/commands/pull.js';
import type { PushJson } from '../../src/commands/push.js';
import { NIX_ENV } from './nix.js';
import { podmanStoreFlags } from './podman.js';

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

/** Variables added to the test environment (NIX_ENV: this process's, with Nix's binary cache off). */
export type ExtraEnv = NodeJS.ProcessEnv;

/** Runs `nixdock ARGS` in `cwd` and waits for it. */
export function nixdock(cwd: string, args: string[], env: ExtraEnv = {}): CliRun {
  const run = spawnSync(process.execPath, nixdockArgv(args), { cwd, env: { ...NIX_ENV, ...env }, encoding: 'utf8', maxBuffer: 256 << 20 });
  return { status: run.status, stdout: run.stdout, stderr: run.stderr };
}

/** Runs `nixdock ARGS` and fails the test with its stderr when the exit code is not 0. */
export function nixdockOk(cwd: string, args: string[], env?: ExtraEnv): CliRun {
  return succeeded(args, nixdock(cwd, args, env));
}

/** Runs `nixdock ARGS` with stdout going to `file` (an image stream is binary); returns the exit code and stderr. */
export function nixdockToFile(cwd: string, args: string[], file: string, env: ExtraEnv = {}): CliRun {
  const fd = openSync(file, 'w');
  try {
    const run = spawnSync(process.execPath, nixdockArgv(args), { cwd, env: { ...NIX_ENV, ...env }, encoding: 'utf8', stdio: ['ignore', fd, 'pipe'] });
    return { status: run.status, stdout: '', stderr: run.stderr };
  } finally {
    closeSync(fd);
  }
}

/** Starts `nixdock ARGS` in `cwd` without waiting (daemons, processes a test kills, builds run side by side). */
export function spawnNixdock(cwd: string, args: string[], options: SpawnOptions = {}): ChildProcess {
  return spawn(process.execPath, nixdockArgv(args), { cwd, env: NIX_ENV, stdio: ['ignore', 'pipe', 'pipe'], ...options });
}

/** Runs `nixdock ARGS` without blocking the test's event loop (so it can watch or kill it meanwhile). */
export function nixdockAsync(cwd: string, args: string[]): Promise<CliRun> {
  return finished(spawnNixdock(cwd, args), true);
}

/** `nixdock ARGS | podman <store flags> PODMAN_ARGS`: the bytes go from one process to the other, no file in between. */
export async function nixdockIntoPodman(cwd: string, args: string[], podmanDir: string, podmanArgs: string[]): Promise<{ cli: CliRun; podman: CliRun }> {
  const cli = spawnNixdock(cwd, args);
  const consumer = spawn('podman', [...podmanStoreFlags(podmanDir), ...podmanArgs], { stdio: ['pipe', 'pipe', 'pipe'] });
  cli.stdout!.pipe(consumer.stdin);
  const [cliRun, podmanRun] = await Promise.all([finished(cli, false), finished(consumer, true)]);
  return { cli: cliRun, podman: podmanRun };
}

/** The exit code of a started process, once it has exited. */
export function exited(proc: ChildProcess): Promise<number | null> {
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve(proc.exitCode);
  return new Promise((done) => proc.once('exit', (code) => done(code)));
}

function finished(child: ChildProcess, captureStdout: boolean): Promise<CliRun> {
  let stdout = '';
  let stderr = '';
  if (captureStdout) child.stdout?.on('data', (d: Buffer) => (stdout += d));
  child.stderr?.on('data', (d: Buffer) => (stderr += d));
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (status) => resolve({ status, stdout, stderr }));
  });
}

// ─────────────── --json, typed by the commands themselves ───────────────

/** What each command prints with `--json` when it succeeds. */
export interface JsonOutput {
  build: BuildJson;
  export: ExportJson;
  gc: GcJson;
  inspect: InspectJson;
  pull: PullJson;
  push: PushJson;
}
export type JsonCommand = keyof JsonOutput;

/** `nixdock COMMAND ARGS --json`, which must succeed: its parsed output. */
export function nixdockJson<C extends JsonCommand>(cwd: string, args: [C, ...string[]], env?: ExtraEnv): JsonOutput[C] {
  return jsonOf(args[0], succeeded(args, nixdock(cwd, [...args, '--json'], env)));
}

/** nixdockJson without blocking the test's event loop. */
export async function nixdockJsonAsync<C extends JsonCommand>(cwd: string, args: [C, ...string[]]): Promise<JsonOutput[C]> {
  return jsonOf(args[0], succeeded(args, await nixdockAsync(cwd, [...args, '--json'])));
}

/** The output of a successful `nixdock COMMAND … --json` run. */
export function jsonOf<C extends JsonCommand>(_command: C, run: CliRun): JsonOutput[C] {
  return JSON.parse(run.stdout) as JsonOutput[C];
}

/** What a failed `--json` run printed: the error as the CLI serialises it. */
export function jsonFailure(run: CliRun): JsonFailure {
  return JSON.parse(run.stdout) as JsonFailure;
}

function succeeded(args: string[], run: CliRun): CliRun {
  if (run.status !== 0) throw new Error(`nixdock ${args.join(' ')} exited with ${run.status}:\n${run.stderr}`);
  return run;
}
