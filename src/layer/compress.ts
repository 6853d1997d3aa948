/**
 * Deterministic layer compression: the same tar gives the same compressed bytes on every run
 * and machine (with the same zlib / zstd versions), so compressed digests can be cached and
 * registries keep deduplicating.
 */
import { spawn } from 'node:child_process';
import { Duplex } from 'node:stream';
import { NixdockError } from '../errors.js';
import { gzipDeterministic } from './gzip.js';
import type { Codec } from '../types.js';

/** Fixed: changing it changes every zstd digest. */
const ZSTD_LEVEL = 3;

/** A compressor for the codec, or undefined for 'none'. */
export function compressor(codec: Codec): Duplex | undefined {
  if (codec === 'gzip') return gzipDeterministic();
  if (codec === 'zstd') return zstdDeterministic();
  return undefined;
}

/**
 * zstd through the `zstd` CLI (Node 20's zlib has no zstd): fixed level, single-threaded
 * (multi-threaded frames depend on the worker count), content checksum on.
 */
export function zstdDeterministic(): Duplex {
  const child = spawn('zstd', ['-q', '-c', `-${ZSTD_LEVEL}`, '--single-thread', '--check'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const duplex = Duplex.from({ writable: child.stdin, readable: child.stdout });
  child.on('error', (err: NodeJS.ErrnoException) => duplex.destroy(zstdError(err.code === 'ENOENT' ? 'the zstd CLI is not installed' : err.message)));
  child.on('close', (status) => {
    if (status !== 0 && status !== null) duplex.destroy(zstdError(stderr.trim() || `zstd exited with status ${status}`));
  });
  duplex.on('close', () => child.exitCode === null && child.kill());
  return duplex;
}

function zstdError(found: string): NixdockError {
  return new NixdockError('LAYER_BUILD', 'zstd compression failed', {
    found,
    hint: 'Install the Debian package zstd, or use compression "gzip" or "none".',
  });
}
