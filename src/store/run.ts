/**
 * Runs nix CLI commands as child processes in their own process group, so an abort (Ctrl-C,
 * a superseded daemon build) stops nix and every builder it started, not just the top process.
 */
import { spawn } from 'node:child_process';
import { NixdockError } from '../errors.js';
import { killProcessGroup } from '../util/process.js';

export interface NixRun {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Cap on the Nix log a NIX_FAILED error carries (its tail): the whole log of a failed build is
 * what the user needs, and it is kept with the build in the history, so it must stay bounded.
 */
export const NIX_LOG_KEEP_BYTES = 64 * 1024;

export const NIX_INSTALL_HINT = 'install the Debian package nix-bin (or Nix from nixos.org)';

export interface RunNixOptions {
  cwd?: string;
  signal?: AbortSignal;
  input?: string;
  /** Each line Nix writes to stderr (its build log and progress), as it arrives. */
  onLine?: (line: string) => void;
}

/** Runs `command args` and resolves with its exit code and output; rejects only for a missing binary or an abort. */
export function runNix(command: string, args: string[], opts: RunNixOptions = {}): Promise<NixRun> {
  const { signal } = opts;
  if (signal?.aborted) return Promise.reject(aborted(command));
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: opts.cwd, stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'], detached: true });
    const stdout: Buffer[] = [];
    let stderr = '';
    let partial = '';
    child.stdout!.on('data', (chunk: Buffer) => stdout.push(chunk));
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (text: string) => {
      stderr = (stderr + text).slice(-NIX_LOG_KEEP_BYTES);
      if (!opts.onLine) return;
      const lines = (partial + text).split('\n');
      partial = lines.pop()!.slice(-NIX_LOG_KEEP_BYTES);
      for (const line of lines) opts.onLine(line);
    });
    child.stderr!.on('end', () => {
      if (partial) opts.onLine?.(partial);
    });
    const onAbort = (): void => {
      killProcessGroup(child.pid);
      reject(aborted(command));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    child.on('error', (err: NodeJS.ErrnoException) => {
      signal?.removeEventListener('abort', onAbort);
      reject(err.code === 'ENOENT' ? nixMissing(command) : err);
    });
    child.on('close', (code) => {
      signal?.removeEventListener('abort', onAbort);
      resolve({ code: code ?? 1, stdout: Buffer.concat(stdout).toString('utf8'), stderr });
    });
    if (child.stdin) {
      // EPIPE when nix exits early: its exit code and stderr tell why.
      child.stdin.on('error', () => {});
      child.stdin.end(opts.input);
    }
  });
}

/**
 * NIX_FAILED carrying Nix's whole stderr (the build log and Nix's error), up to its last
 * NIX_LOG_KEEP_BYTES, newlines kept: the terminal, the dashboard, the history and `nixdock
 * inspect` show the same log, and nobody has to rerun the build to read it.
 */
export function nixFailed(what: string, run: NixRun): NixdockError {
  const cut = run.stderr.length >= NIX_LOG_KEEP_BYTES;
  // A cut log starts mid-line: drop that partial line and say so.
  const log = (cut ? `… (earlier lines cut: the last ${NIX_LOG_KEEP_BYTES / 1024} KiB are kept)\n${run.stderr.slice(run.stderr.indexOf('\n') + 1)}` : run.stderr).trimEnd();
  return new NixdockError('NIX_FAILED', `${what} failed (exit code ${run.code}):\n${log}`, {
    hint: 'Fix the Nix expression or the build whose log is above.',
  });
}

export function nixMissing(command: string): NixdockError {
  return new NixdockError('NIX_MISSING', `The nix CLI (\`${command}\`) was not found on PATH`, {
    found: `no \`${command}\` on PATH`,
    expected: 'the nix command-line tools',
    hint: NIX_INSTALL_HINT,
  });
}

function aborted(command: string): NixdockError {
  return new NixdockError('ABORTED', `Stopped \`${command}\` because the build was aborted`);
}
