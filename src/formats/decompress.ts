/**
 * Layer blobs may be stored gzip- or zstd-compressed whatever their file name or media type says,
 * so compression is recognised by magic bytes and undone on the fly.
 */
import { spawn } from 'node:child_process';
import * as stream from 'node:stream';
import { Duplex, PassThrough, Readable, Transform, pipeline } from 'node:stream';
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

export function decompressor(compression: Compression, limits: DecompressionLimits = decompressionLimits()): Duplex {
  if (compression === 'gzip') return bounded(zlib.createGunzip(), limits);
  if (compression === 'zstd') return bounded(zstdDecompressor(), limits);
  return new PassThrough();
}

/**
 * How far decompression may go: a base image is untrusted, and a 2 MB gzip bomb is 2 GB of zeros
 * on disk (docker-archive's decompressed copy) or through a build. Real layers rarely exceed 20:1;
 * a file of zeros can reach 1000:1, hence the override.
 */
export interface DecompressionLimits {
  /** Output bytes per input byte allowed (0: no ratio limit). NIXDOCK_MAX_DECOMPRESSION_RATIO, default 100. */
  ratio: number;
  /** Output allowed whatever the ratio, so small blobs of zeros pass. */
  slackBytes: number;
  /** Output bytes allowed in all (0: no limit). NIXDOCK_MAX_DECOMPRESSED_BYTES, default none. */
  maxBytes: number;
}

export function decompressionLimits(env: NodeJS.ProcessEnv = process.env): DecompressionLimits {
  return {
    ratio: envNumber(env, 'NIXDOCK_MAX_DECOMPRESSION_RATIO', 100),
    slackBytes: 16 * 1024 * 1024,
    maxBytes: envNumber(env, 'NIXDOCK_MAX_DECOMPRESSED_BYTES', 0),
  };
}

function envNumber(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const text = env[name];
  if (text === undefined || text === '') return fallback;
  const value = Number(text);
  if (!Number.isFinite(value) || value < 0) {
    throw new NixdockError('INPUT_INVALID', `${name} is not a non-negative number`, { location: { field: name }, found: JSON.stringify(text), expected: 'a number, 0 for no limit' });
  }
  return value;
}

/** The decompressor between a counter of what goes in and a guard on what comes out. */
function bounded(inner: Duplex, limits: DecompressionLimits): Duplex {
  let input = 0;
  let output = 0;
  const countIn = new Transform({
    transform(chunk: Buffer, _enc, done) {
      input += chunk.length;
      done(null, chunk);
    },
  });
  const guard = new Transform({
    transform(chunk: Buffer, _enc, done) {
      output += chunk.length;
      if (limits.maxBytes > 0 && output > limits.maxBytes) return done(bomb(`more than ${limits.maxBytes} bytes`, 'NIXDOCK_MAX_DECOMPRESSED_BYTES'));
      if (limits.ratio > 0 && output > limits.ratio * input + limits.slackBytes) {
        return done(bomb(`more than ${limits.ratio} times its compressed size (${output} bytes from ${input})`, 'NIXDOCK_MAX_DECOMPRESSION_RATIO'));
      }
      done(null, chunk);
    },
  });
  // stream.compose is in Node 20 but not in its @types.
  return (stream as unknown as { compose(...streams: Duplex[]): Duplex }).compose(countIn, inner, guard);
}

function bomb(what: string, env: string): NixdockError {
  return new NixdockError('INPUT_INVALID', `A compressed base image layer or archive expands to ${what}`, {
    found: what,
    expected: 'compressed data that expands within the limits',
    hint: `This looks like a decompression bomb; nothing was kept. If the image is genuine (e.g. large files of zeros), raise the limit: ${env}=<n> (0 disables it).`,
  });
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
