/**
 * The `nix` store backend: the machine's Nix store, queried and built through the nix CLI.
 * A whole closure costs one `nix path-info --json --recursive` call, never a process per path —
 * or none, when a ClosureCache remembers it and every path is still the same file.
 */
import { lstatSync } from 'node:fs';
import { resolve } from 'node:path';
import { NixdockError } from '../errors.js';
import type { Closure, ClosureCache, Installable, Store, StorePathInfo } from '../types.js';
import { parsePathInfoJson } from './path-info.js';
import { compareStrings, normaliseRoots, storePathMissing, toStorePath } from './paths.js';
import { nixFailed, runNix, type NixRun } from './run.js';

/** `nix` subcommands are experimental in Nix 2.4–2.x; opt in per call instead of requiring a nix.conf edit. */
const EXPERIMENTAL = ['--extra-experimental-features', 'nix-command flakes'];
const MISSING_HINT = 'Build the path first (nix-build, nix build) or copy it in (nix copy), and check for typos.';

export class NixStore implements Store {
  readonly kind = 'nix' as const;

  constructor(readonly storeDir = '/nix/store') {}

  async closure(roots: string[], signal?: AbortSignal, cache?: ClosureCache): Promise<Closure> {
    const storePaths = normaliseRoots(roots, this.storeDir);
    // Taken before Nix is asked: a root re-created meanwhile then fails the check next time.
    const rootFingerprints = new Map(storePaths.map((path) => [path, rootFingerprint(path)]));
    return this.cachedClosure(storePaths, rootFingerprints, cache) ?? this.queryClosure(storePaths, rootFingerprints, signal);
  }

  /** The cache's answer when every path of it is still the file it recorded; undefined sends us to Nix. */
  private cachedClosure(roots: string[], rootFingerprints: Map<string, string>, cache?: ClosureCache): Closure | undefined {
    const recorded = cache?.recordedClosure(roots);
    if (!recorded) return undefined;
    const fingerprints = new Map<string, string>();
    for (const { info, fingerprint } of recorded) {
      if ((rootFingerprints.get(info.path) ?? fingerprintOf(info.path)) !== fingerprint) return undefined;
      fingerprints.set(info.path, fingerprint);
    }
    return this.toClosure(roots, recorded.map(({ info }) => info), fingerprints);
  }

  private async queryClosure(roots: string[], rootFingerprints: Map<string, string>, signal?: AbortSignal): Promise<Closure> {
    const run = await runNix('nix', [...EXPERIMENTAL, 'path-info', '--json', '--recursive', ...roots], { signal });
    if (run.code !== 0) throw pathInfoError(run);
    const infos = parsePathInfoJson(run.stdout, this.storeDir);
    // Only the roots need fingerprints from before the query. Nix deletes no path while a valid
    // path refers to it, so re-creating any other path of the closure after Nix answered means a
    // root was deleted too — and that root's fingerprint fails the check next time.
    const fingerprints = new Map<string, string>();
    for (const { path } of infos) {
      const fingerprint = rootFingerprints.get(path) ?? fingerprintOf(path);
      if (fingerprint !== undefined) fingerprints.set(path, fingerprint);
    }
    return this.toClosure(roots, infos, fingerprints);
  }

  private toClosure(roots: string[], infos: StorePathInfo[], fingerprints: Map<string, string>): Closure {
    const sorted = [...infos].sort((a, b) => compareStrings(a.path, b.path));
    return { storeDir: this.storeDir, roots, paths: new Map(sorted.map((info) => [info.path, info])), fingerprints };
  }

  physicalPath(storePath: string): string {
    toStorePath(storePath, this.storeDir);
    return storePath;
  }

  async realise(installable: Installable, cwd: string, signal?: AbortSignal, onLog?: (line: string) => void): Promise<string[]> {
    return installable.kind === 'file'
      ? this.realiseFile(resolve(cwd, installable.file), installable.attr, cwd, signal, onLog)
      : this.realiseFlake(installable.ref, cwd, signal, onLog);
  }

  private async realiseFile(file: string, attr: string | undefined, cwd: string, signal?: AbortSignal, onLine?: (line: string) => void): Promise<string[]> {
    const args = [file, ...(attr === undefined ? [] : ['-A', attr]), '--no-out-link'];
    const run = await runNix('nix-build', args, { cwd, signal, onLine });
    if (run.code !== 0) throw nixFailed(`nix-build ${file}${attr === undefined ? '' : ` -A ${attr}`}`, run);
    return outputLines(run.stdout);
  }

  private async realiseFlake(ref: string, cwd: string, signal?: AbortSignal, onLine?: (line: string) => void): Promise<string[]> {
    // `--json` rather than `--print-out-paths`: the latter only exists from Nix 2.9 on. -L: the
    // build log as lines on stderr (nix build otherwise only shows a progress bar on a TTY).
    const run = await runNix('nix', [...EXPERIMENTAL, 'build', ref, '--no-link', '--json', '-L'], { cwd, signal, onLine });
    if (run.code !== 0) throw nixFailed(`nix build ${ref}`, run);
    const results = JSON.parse(run.stdout) as Array<{ outputs?: Record<string, string> }>;
    return results.flatMap((result) => Object.values(result.outputs ?? {})).sort(compareStrings);
  }
}

/**
 * The identity of a store path's top-level entry (see ClosureCache): `dev:ino:ctimeNs`, or
 * undefined when it is gone. Sync on purpose: a few hundred lstat calls take about a millisecond.
 */
function fingerprintOf(path: string): string | undefined {
  try {
    const stats = lstatSync(path, { bigint: true });
    return `${stats.dev}:${stats.ino}:${stats.ctimeNs}`;
  } catch {
    return undefined; // missing or unreadable: either way not the file Nix described
  }
}

function rootFingerprint(path: string): string {
  const fingerprint = fingerprintOf(path);
  if (fingerprint === undefined) throw storePathMissing(path, MISSING_HINT);
  return fingerprint;
}

/** `path '…' is not valid` is how nix path-info reports a path on disk that Nix never registered. */
function pathInfoError(run: NixRun): NixdockError {
  const invalid = /path '([^']+)' is not valid/.exec(run.stderr);
  return invalid ? storePathMissing(invalid[1]!, MISSING_HINT) : nixFailed('nix path-info', run);
}

function outputLines(stdout: string): string[] {
  return stdout.split('\n').map((line) => line.trim()).filter(Boolean).sort(compareStrings);
}
