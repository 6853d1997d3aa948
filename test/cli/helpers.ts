/** What the CLI suites check around a run: an environment without Nix, a snapshot of outputs, files from the repository. */
import { cpSync, existsSync, lstatSync, readdirSync, readFileSync, readlinkSync, symlinkSync } from 'node:fs';
import { join, relative } from 'node:path';
import type { TestContext } from 'node:test';
import { sha256Hex } from '../helpers/bytes.js';
import { REPO } from '../helpers/cli.js';
import { NIX_ENV } from '../helpers/nix.js';
import { tempDir } from '../helpers/tmp.js';

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
        entries[rel] = `file ${sha256Hex(readFileSync(path))}`;
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
