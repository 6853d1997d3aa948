/**
 * The `nix` store backend: the machine's Nix store, queried and built through the nix CLI.
 * A whole closure costs one `nix path-info --json --recursive` call, never a process per path.
 */
import { lstat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { NixdockError } from '../errors.js';
import type { Closure, Installable, Store } from '../types.js';
import { parsePathInfoJson } from './path-info.js';
import { compareStrings, normaliseRoots, storePathMissing, toStorePath } from './paths.js';
import { nixFailed, runNix, type NixRun } from './run.js';

/** `nix` subcommands are experimental in Nix 2.4–2.x; opt in per call instead of requiring a nix.conf edit. */
const EXPERIMENTAL = ['--extra-experimental-features', 'nix-command flakes'];
const MISSING_HINT = 'Build the path first (nix-build, nix build) or copy it in (nix copy), and check for typos.';

export class NixStore implements Store {
  readonly kind = 'nix' as const;

  constructor(readonly storeDir = '/nix/store') {}

  async closure(roots: string[], signal?: AbortSignal): Promise<Closure> {
    const storePaths = normaliseRoots(roots, this.storeDir);
    await Promise.all(storePaths.map((path) => assertExists(path)));
    const run = await runNix('nix', [...EXPERIMENTAL, 'path-info', '--json', '--recursive', ...storePaths], { signal });
    if (run.code !== 0) throw pathInfoError(run);
    const infos = parsePathInfoJson(run.stdout, this.storeDir).sort((a, b) => compareStrings(a.path, b.path));
    return { storeDir: this.storeDir, roots: storePaths, paths: new Map(infos.map((info) => [info.path, info])) };
  }

  physicalPath(storePath: string): string {
    toStorePath(storePath, this.storeDir);
    return storePath;
  }

  async realise(installable: Installable, cwd: string, signal?: AbortSignal): Promise<string[]> {
    return installable.kind === 'file'
      ? this.realiseFile(resolve(cwd, installable.file), installable.attr, cwd, signal)
      : this.realiseFlake(installable.ref, cwd, signal);
  }

  private async realiseFile(file: string, attr: string | undefined, cwd: string, signal?: AbortSignal): Promise<string[]> {
    const args = [file, ...(attr === undefined ? [] : ['-A', attr]), '--no-out-link'];
    const run = await runNix('nix-build', args, { cwd, signal });
    if (run.code !== 0) throw nixFailed(`nix-build ${file}${attr === undefined ? '' : ` -A ${attr}`}`, run);
    return outputLines(run.stdout);
  }

  private async realiseFlake(ref: string, cwd: string, signal?: AbortSignal): Promise<string[]> {
    // `--json` rather than `--print-out-paths`: the latter only exists from Nix 2.9 on.
    const run = await runNix('nix', [...EXPERIMENTAL, 'build', ref, '--no-link', '--json'], { cwd, signal });
    if (run.code !== 0) throw nixFailed(`nix build ${ref}`, run);
    const results = JSON.parse(run.stdout) as Array<{ outputs?: Record<string, string> }>;
    return results.flatMap((result) => Object.values(result.outputs ?? {})).sort(compareStrings);
  }
}

async function assertExists(path: string): Promise<void> {
  try {
    await lstat(path);
  } catch {
    throw storePathMissing(path, MISSING_HINT);
  }
}

/** `path '…' is not valid` is how nix path-info reports a path on disk that Nix never registered. */
function pathInfoError(run: NixRun): NixdockError {
  const invalid = /path '([^']+)' is not valid/.exec(run.stderr);
  return invalid ? storePathMissing(invalid[1]!, MISSING_HINT) : nixFailed('nix path-info', run);
}

function outputLines(stdout: string): string[] {
  return stdout.split('\n').map((line) => line.trim()).filter(Boolean).sort(compareStrings);
}
