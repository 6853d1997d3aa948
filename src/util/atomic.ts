/**
 * Atomic file outputs: write to a temp file in the destination's directory, rename over the
 * destination on success. A reader never sees half a file, and a failed or killed write leaves
 * the previous file untouched (a killed process may leave a `.*.tmp-*` file, never a wrong one).
 */
import { randomBytes } from 'node:crypto';
import { closeSync, openSync } from 'node:fs';
import { readdir, rename, unlink, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { NixdockError, withWritePath } from '../errors.js';
import { processExists } from './process.js';

/** Prefix of every temp file nixdock writes next to an output (also used to clean them up). */
export const TEMP_PREFIX = '.nixdock-tmp-';

/** A fresh temp path in the same directory as `finalPath`, so the rename cannot cross filesystems. */
export function tempPathFor(finalPath: string): string {
  return join(dirname(finalPath), `${TEMP_PREFIX}${basename(finalPath)}-${process.pid}-${randomBytes(4).toString('hex')}`);
}

/**
 * Runs `write(tmpPath)`, then renames the temp file to `finalPath`. On any failure the temp file
 * is removed and the error rethrown (unwritable directories become OUTPUT_NOT_WRITABLE).
 */
export async function withTempFile<T>(finalPath: string, write: (tmpPath: string) => Promise<T>): Promise<T> {
  const tmpPath = tempPathFor(finalPath);
  try {
    const result = await write(tmpPath);
    await rename(tmpPath, finalPath);
    return result;
  } catch (err) {
    await unlink(tmpPath).catch(() => undefined);
    throw asOutputError(withWritePath(err, finalPath), finalPath);
  }
}

export async function writeFileAtomic(path: string, data: Buffer | string, mode = 0o644): Promise<void> {
  await withTempFile(path, (tmpPath) => writeFile(tmpPath, data, { mode }));
}

/**
 * A killed build leaves its temp files (`.nixdock-tmp-<name>-<pid>-<random>`); a half-written
 * layer or archive can be hundreds of MB. Those of processes that no longer exist are removed; a
 * live process's (a concurrent build) are its own business.
 */
export async function removeAbandonedTemps(dir: string): Promise<void> {
  const names = await readdir(dir).catch(() => [] as string[]);
  for (const name of names) {
    const pid = name.startsWith(TEMP_PREFIX) ? /-(\d+)-[0-9a-f]+$/.exec(name)?.[1] : undefined;
    if (pid !== undefined && !processExists(Number(pid))) await unlink(join(dir, name)).catch(() => undefined);
  }
}

/** Creates the file at `path` (which must not exist) and runs `write` with its descriptor, closing it after. */
export async function writeNewFile<T>(path: string, write: (fd: number) => Promise<T>): Promise<T> {
  const fd = openSync(path, 'wx', 0o644);
  try {
    return await write(fd);
  } finally {
    closeSync(fd);
  }
}

const NOT_WRITABLE = new Set(['EACCES', 'EPERM', 'EROFS', 'ENOENT', 'ENOTDIR', 'EISDIR']);

function asOutputError(err: unknown, finalPath: string): unknown {
  const code = (err as NodeJS.ErrnoException)?.code;
  if (err instanceof NixdockError || code === undefined || !NOT_WRITABLE.has(code)) return err;
  return new NixdockError('OUTPUT_NOT_WRITABLE', `Cannot write ${finalPath}`, {
    location: { file: finalPath },
    found: code,
    expected: 'an existing, writable directory',
    hint: `Check that ${dirname(finalPath)} exists and is writable, or choose another output path.`,
    cause: err,
  });
}
