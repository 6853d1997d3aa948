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

/** How many trailing stderr lines go into a NIX_FAILED message: enough for Nix's error trace. */
const STDERR_TAIL_LINES = 40;
/** Cap on kept stderr bytes: a chatty build log must not grow memory without bound. */
const STDERR_KEEP_BYTES = 256 * 1024;

export const NIX_INSTALL_HINT = 'install the Debian package nix-bin (or Nix from nixos.org)';

/** Runs `command args` and resolves with its exit code and output; rejects only for a missing binary or an abort. */
export function runNix(command: string, args: string[], opts: { cwd?: string; signal?: AbortSignal; input?: string } = {}): Promise<NixRun> {
  const { signal } = opts;
  if (signal?.aborted) return Promise.reject(aborted(command));
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: opts.cwd, stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'], detached: true });
    const stdout: Buffer[] = [];
    let stderr = '';
    child.stdout!.on('data', (chunk: Buffer) => stdout.push(chunk));
    child.stderr!.on('data', (chunk: Buffer) => {
      stderr = (stderr + chunk.toString('utf8')).slice(-STDERR_KEEP_BYTES);
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

/** NIX_FAILED carrying the tail of Nix's own stderr, which is where its error message is. */
export function nixFailed(what: string, run: NixRun): NixdockError {
  const tail = run.stderr.trimEnd().split('\n').slice(-STDERR_TAIL_LINES).join('\n');
  return new NixdockError('NIX_FAILED', `${what} failed (exit code ${run.code}):\n${tail}`, {
    hint: 'Fix the Nix expression or build above; run the same nix command by hand to see the full log.',
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
