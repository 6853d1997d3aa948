/**
 * Layer blobs may be stored gzip- or zstd-compressed whatever their file name or media type says,
 * so compression is recognised by magic bytes and undone on the fly.
 */
import { spawn } from 'node:child_process';
import { Duplex, PassThrough, Readable, pipeline } from 'node:stream';
import * as zlib from 'node:zlib';
import { NixdockError } from '../errors.js';

export type Compression = 'none' | 'gzip' | 'zstd';

const GZIP_MAGIC = Buffer.from([0x1f, 0x8b]);
const ZSTD_MAGIC = Buffer.from([0x28, 0xb5, 0x2f, 0xfd]);
/** Bytes needed to recognise any supported format. */
export const SNIFF_BYTES = 4;

export function sniffCompression(head: Buffer): Compression {
  if (head.subarray(0, 2).equals(GZIP_MAGIC)) return 'gzip';
  if (head.subarray(0, 4).equals(ZSTD_MAGIC)) return 'zstd';
  return 'none';
}

export function decompressor(compression: Compression): Duplex {
  if (compression === 'gzip') return zlib.createGunzip();
  if (compression === 'zstd') return zstdDecompressor();
  return new PassThrough();
}

/** A stream that decompresses whatever it is fed (or passes it through when it is not compressed). */
export function autoDecompress(): Duplex {
  return Duplex.from(async function* (source: AsyncIterable<Buffer>) {
    const iterator = source[Symbol.asyncIterator]();
    const head: Buffer[] = [];
    let headLength = 0;
    while (headLength < SNIFF_BYTES) {
      const next = await iterator.next();
      if (next.done) break;
      head.push(next.value);
      headLength += next.value.length;
    }
    const first = Buffer.concat(head);
    const compression = sniffCompression(first);
    const input = Readable.from(prepend(first, iterator));
    if (compression === 'none') return yield* input;
    yield* pipeline(input, decompressor(compression), () => undefined);
  });
}

async function* prepend(first: Buffer, rest: AsyncIterator<Buffer>): AsyncGenerator<Buffer> {
  if (first.length > 0) yield first;
  for (let next = await rest.next(); !next.done; next = await rest.next()) yield next.value;
}

/** Node ≥ 22.15 has zstd in zlib; Node 20 does not, so fall back to the zstd CLI. */
function zstdDecompressor(): Duplex {
  const native = (zlib as unknown as { createZstdDecompress?: () => Duplex }).createZstdDecompress;
  if (native) return native();
  const child = spawn('zstd', ['-d', '-c', '-q'], { stdio: ['pipe', 'pipe', 'pipe'] });
  const stream = Duplex.from({ writable: child.stdin, readable: child.stdout });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (text: string) => (stderr += text));
  child.on('error', (err) => stream.destroy(zstdMissing(err)));
  child.on('close', (code) => {
    if (code !== 0 && code !== null) stream.destroy(new Error(`zstd -d failed: ${stderr.trim() || `exit code ${code}`}`));
  });
  stream.on('close', () => {
    if (child.exitCode === null && child.signalCode === null) child.kill();
  });
  return stream;
}

function zstdMissing(cause: Error): NixdockError {
  return new NixdockError('INPUT_INVALID', 'A zstd-compressed layer needs the zstd tool on this Node version', {
    found: cause.message,
    expected: 'the zstd command on PATH, or Node ≥ 22.15',
    hint: 'Install zstd (Debian package zstd) or use a gzip/uncompressed base image.',
    cause,
  });
}
