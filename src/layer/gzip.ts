/**
 * Deterministic gzip on all cores (the pigz scheme): the input is cut into fixed CHUNK_SIZE
 * pieces, each deflated on its own — on libuv's thread pool, so several at once — with the 32 KiB
 * before it as preset dictionary and ended by a sync flush (byte-aligned, not final). The pieces
 * concatenated, then an empty final block, form one deflate stream inside one gzip member, whose
 * CRC-32 and length are computed over the input as it passes.
 *
 * Why this shape: a piece's bytes depend only on its own input and the 32 KiB before it, never on
 * how many pieces run at once or how the input was chunked on arrival, so the blob (and its
 * digest, which registries deduplicate on) is the same with 1, 2 or 32 threads. The dictionary
 * keeps back-references across piece boundaries, so the ratio stays within ~0.1 % of one zlib
 * stream. A single zlib stream cannot be split across cores and stay deterministic.
 *
 * Any gzip reader reads the result (gzip -t, zcat, Go's and Python's gzip, registries, engines).
 * Equal on every machine running the same bundled zlib (Node ships its own); the cache records
 * diff_id → compressed digest, so a different zlib elsewhere never breaks a push, it only uploads.
 */
import { Transform, type TransformCallback } from 'node:stream';
import { constants as zlib, crc32, deflateRaw } from 'node:zlib';

/**
 * Input per piece. Fixed: changing it changes every gzip digest. 256 KiB keeps a 1 MiB layer on
 * four cores and the per-piece cost (zlib state set-up, 32 KiB dictionary, a thread-pool hop) under 1 %.
 */
export const CHUNK_SIZE = 256 * 1024;
/** Deflate's window: the dictionary each piece starts from. */
const WINDOW = 32 * 1024;
/** Fixed so a blob's digest depends only on the tar; changing any of these changes every gzip digest. */
const DEFLATE_OPTIONS = { level: 6, memLevel: 8, windowBits: 15, strategy: zlib.Z_DEFAULT_STRATEGY } as const;
/** ID1 ID2 CM=deflate FLG=0 MTIME=0 XFL=0 (level 6) OS=3 (Unix): no name, no time, the same everywhere. */
const HEADER = Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]);
/** An empty fixed-Huffman block with BFINAL set: ends the stream after the last sync-flushed piece. */
const FINAL_BLOCK = Buffer.from([0x03, 0x00]);

/**
 * Pieces in flight at once (compressing, or done and waiting for an earlier one). libuv's pool
 * runs them; it has 4 threads unless the environment variable UV_THREADPOOL_SIZE says more,
 * and file reads share it, so one thread is left for them.
 */
export function defaultGzipThreads(): number {
  return Math.max(1, (Number(process.env.UV_THREADPOOL_SIZE) || 4) - 1);
}

export interface GzipOptions {
  /** Pieces compressed at the same time (default defaultGzipThreads()); the output does not depend on it. */
  threads?: number;
}

interface Piece {
  output?: Buffer;
}

/** A gzip compressor whose output depends only on its input (see the module comment). */
export function gzipDeterministic(opts: GzipOptions = {}): Transform {
  return new ParallelGzip(Math.max(1, opts.threads ?? defaultGzipThreads()));
}

class ParallelGzip extends Transform {
  private crc = 0;
  private length = 0;
  private piece = Buffer.allocUnsafe(CHUNK_SIZE);
  private fill = 0;
  private dictionary: Buffer | undefined;
  /** Pieces in input order, compressing or done but not yet pushed. At most `threads` of them. */
  private readonly pending: Piece[] = [];
  /** Called once `pending` has room again (a write waiting for a piece to finish). */
  private waiting: (() => void) | undefined;

  constructor(private readonly threads: number) {
    super();
    this.push(HEADER);
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.crc = crc32(chunk, this.crc);
    this.length += chunk.length;
    this.accept(chunk, 0, callback);
  }

  /** Copies chunk[from..] into pieces, starting one whenever a piece is full; waits while `threads` are busy. */
  private accept(chunk: Buffer, from: number, callback: TransformCallback): void {
    while (from < chunk.length) {
      if (this.pending.length >= this.threads) {
        this.waiting = () => this.accept(chunk, from, callback);
        return;
      }
      const n = chunk.copy(this.piece, this.fill, from);
      this.fill += n;
      from += n;
      if (this.fill === CHUNK_SIZE) this.startPiece();
    }
    callback();
  }

  private startPiece(): void {
    const input = this.piece.subarray(0, this.fill);
    const piece: Piece = {};
    this.pending.push(piece);
    const options = { ...DEFLATE_OPTIONS, finishFlush: zlib.Z_SYNC_FLUSH, ...(this.dictionary && { dictionary: this.dictionary }) };
    deflateRaw(input, options, (err, output) => {
      if (err) return this.destroy(err);
      piece.output = output;
      this.flushDone();
    });
    // The piece buffer is read by the thread pool until the callback: the next piece gets a new one.
    this.dictionary = input.length >= WINDOW ? input.subarray(input.length - WINDOW) : input;
    this.piece = Buffer.allocUnsafe(CHUNK_SIZE);
    this.fill = 0;
  }

  /** Pushes finished pieces in input order, then lets a waiting write go on. */
  private flushDone(): void {
    while (this.pending[0]?.output) this.push(this.pending.shift()!.output);
    const waiting = this.waiting;
    this.waiting = undefined;
    if (waiting && this.pending.length < this.threads) waiting();
    else this.waiting = waiting;
  }

  override _flush(callback: TransformCallback): void {
    if (this.fill > 0) this.startPiece();
    const finish = (): void => {
      if (this.pending.length > 0) {
        this.waiting = finish;
        return;
      }
      const trailer = Buffer.alloc(8);
      trailer.writeUInt32LE(this.crc >>> 0, 0);
      trailer.writeUInt32LE(this.length % 2 ** 32, 4);
      this.push(FINAL_BLOCK);
      callback(null, trailer);
    };
    finish();
  }
}
