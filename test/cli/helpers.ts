/**
 * The real `nixdock` CLI as a user runs it: a child process in a temporary project directory,
 * judged by its exit code, stdout/stderr and the files it leaves behind.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, cpSync, existsSync, openSync, lstatSync, readdirSync, readFileSync, readlinkSync, symlinkSync } from 'node:fs';
import { join, relative } from 'node:path';
import type { TestContext } from 'node:test';
import { nixdock, nixdockArgv, REPO, type CliRun } from '../helpers/cli.js';
import { NIX_ENV } from '../helpers/nix.js';
import { podmanStoreFlags, tempDir } from '../output/fixtures.js';

export { nixdock, REPO, type CliRun } from '../helpers/cli.js';

/** Runs `nixdock ARGS` with stdout going to `file` (an image stream is binary); returns the exit code and stderr. */
export function nixdockToFile(cwd: string, args: string[], file: string): CliRun {
  const fd = openSync(file, 'w');
  try {
    const run = spawnSync(process.execPath, nixdockArgv(args), { cwd, env: NIX_ENV, encoding: 'utf8', stdio: ['ignore', fd, 'pipe'] });
    return { status: run.status, stdout: '', stderr: run.stderr };
  } finally {
    closeSync(fd);
  }
}

/** Runs `nixdock ARGS` and fails the test with its stderr when the exit code is not 0. */
export function nixdockOk(cwd: string, args: string[], env?: NodeJS.ProcessEnv): CliRun {
  const run = nixdock(cwd, args, env);
  if (run.status !== 0) throw new Error(`nixdock ${args.join(' ')} exited with ${run.status}:\n${run.stderr}`);
  return run;
}

/** `nixdock ARGS | podman <store flags> PODMAN_ARGS`: the bytes go from one process to the other, no file in between. */
export async function nixdockIntoPodman(cwd: string, args: string[], podmanDir: string, podmanArgs: string[]): Promise<{ cli: CliRun; podman: CliRun }> {
  const cli = spawn(process.execPath, nixdockArgv(args), { cwd, env: NIX_ENV, stdio: ['ignore', 'pipe', 'pipe'] });
  const consumer = spawn('podman', [...podmanStoreFlags(podmanDir), ...podmanArgs], { stdio: ['pipe', 'pipe', 'pipe'] });
  cli.stdout.pipe(consumer.stdin);
  const [cliRun, podmanRun] = await Promise.all([finished(cli, false), finished(consumer, true)]);
  return { cli: cliRun, podman: podmanRun };
}

function finished(child: ReturnType<typeof spawn>, captureStdout: boolean): Promise<CliRun> {
  let stdout = '';
  let stderr = '';
  if (captureStdout) child.stdout?.on('data', (d: Buffer) => (stdout += d));
  child.stderr?.on('data', (d: Buffer) => (stderr += d));
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (status) => resolve({ status, stdout, stderr }));
  });
}

/**
 * NIX_ENV with every nix CLI removed from PATH: directories holding `nix-build` are replaced by
 * one temp directory of links to all their other programs, so only Nix goes missing.
 */
export function envWithoutNix(t: TestContext): NodeJS.ProcessEnv {
  const linked = tempDir(t, 'nixdock-no-nix-path-');
  const dirs: string[] = [];
  for (const dir of (process.env.PATH ?? '').split(':').filter(Boolean)) {
    if (!existsSync(join(dir, 'nix-build'))) {
      dirs.push(dir);
      continue;
    }
    if (!dirs.includes(linked)) dirs.push(linked);
    for (const name of readdirSync(dir)) {
      if (!name.startsWith('nix') && !existsSync(join(linked, name))) symlinkSync(join(dir, name), join(linked, name));
    }
  }
  return { ...NIX_ENV, PATH: dirs.join(':') };
}

/** Every file, directory and symlink below `dir` with its content hash, mode or target: equal snapshots mean nothing changed. */
export function snapshot(dir: string): Record<string, string> {
  const entries: Record<string, string> = {};
  const walk = (current: string): void => {
    for (const name of readdirSync(current)) {
      const path = join(current, name);
      const rel = relative(dir, path);
      const stats = lstatSync(path);
      if (stats.isDirectory()) {
        entries[rel] = `dir ${stats.mode.toString(8)}`;
        walk(path);
      } else if (stats.isSymbolicLink()) {
        entries[rel] = `link ${readlinkSync(path)}`;
      } else {
        entries[rel] = `file ${createHash('sha256').update(readFileSync(path)).digest('hex')}`;
      }
    }
  };
  walk(dir);
  return entries;
}

/** Copies files or directories of this repository into `dir` (what a user gets from a fresh clone). */
export function copyFromRepo(dir: string, paths: string[]): void {
  for (const path of paths) cpSync(join(REPO, path), join(dir, path), { recursive: true });
}
