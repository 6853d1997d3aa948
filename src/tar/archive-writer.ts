/**
 * The tar container of an archive output (docker-archive). Headers come from nixdock's own ustar
 * encoder (src/tar/header.ts) with a fixed owner and mtime, so the same image gives the
 * same archive bytes.
 *
 * Why not a general tar writer: a warm archive is mostly layer blobs copied from files, and the
 * cost of that copy is the stream machinery between file and output. When the output is a file
 * descriptor (a file, or process.stdout piped or redirected), bodies are written with synchronous
 * read/write calls of 1 MiB straight into it — about the speed of `cat`. Other outputs (a child's
 * stdin, a PassThrough) get the same bytes through the Writable with backpressure.
 */
import { closeSync, createReadStream, openSync, readSync, writeSync } from 'node:fs';
import { once } from 'node:events';
import { addAbortSignal, pipeline, type Readable, type Transform, type Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { NixdockError } from '../errors.js';
import { BLOCK_SIZE, HeaderTemplate, RECORD_SIZE, blockAlign, trailerSize, type HeaderFields } from './header.js';

const CONTAINER_HEADERS = new HeaderTemplate({ mtime: 0, uid: 0, gid: 0, uname: '', gname: '' });
const ZEROS = Buffer.alloc(RECORD_SIZE);
/** Read/write size of the file copy: large enough that syscalls, not bytes, are rare. */
const COPY_CHUNK = 1 << 20;
/** A synchronous copy gives the event loop a turn this often (abort signals, progress events). */
const YIELD_EVERY = 32 << 20;

/** Where archive bytes go. */
interface ByteSink {
  write(bytes: Buffer): Promise<void>;
  /**
   * Bodies can be copied from files with synchronous reads into one reused buffer: write() keeps
   * no reference to its bytes once it resolves. (A Writable keeps chunks until they are flushed.)
   */
  readonly copiesFiles: boolean;
  /** A file descriptor whose writes block (a file, or a pipe switched to blocking): another thread may write a body into it. */
  readonly blockingFd?: number;
  /** A regular file the archive starts at offset 0 of: written headers can be rewritten in place. */
  readonly seekableFd?: number;
  end(): Promise<void>;
  destroy(err: Error): void;
}

export class TarWriter {
  /** Archive bytes written so far (the trailer pads the archive to whole records from here). */
  private offset = 0;

  private constructor(
    private readonly sink: ByteSink,
    private readonly signal?: AbortSignal,
  ) {}

  /** An archive into `out`: straight into its file descriptor when it has a usable one. */
  static into(out: Writable, signal?: AbortSignal): TarWriter {
    return new TarWriter(FdSink.behind(out) ?? new WritableSink(out), signal);
  }

  /** An archive into an open file (the caller closes `fd`). */
  static intoFile(fd: number, signal?: AbortSignal): TarWriter {
    return new TarWriter(new FdSink(fd, { blocking: true, seekable: true }), signal);
  }

  /**
   * Runs `write` (which adds the entries), then ends the archive. Any failure — of the output, a
   * source, or an abort — destroys the output before the trailer: a consumer never gets a
   * complete-looking tar.
   */
  async run<T>(write: (tar: TarWriter) => Promise<T>): Promise<T> {
    try {
      const result = await write(this);
      await this.put(ZEROS.subarray(0, trailerSize(this.offset)));
      await this.sink.end();
      return result;
    } catch (err) {
      this.sink.destroy(err as Error);
      throw err;
    }
  }

  async directory(name: string): Promise<void> {
    await this.header({ name, type: 'dir', mode: 0o755, size: 0, linkName: '' });
  }

  async file(name: string, bytes: Buffer): Promise<void> {
    await this.header(fileEntry(name, bytes.length));
    await this.put(bytes);
    await this.pad(bytes.length);
  }

  /** A file entry of exactly `size` bytes streamed from `source` through `transforms` (e.g. hashing). */
  async stream(name: string, size: number, source: Readable, ...transforms: Transform[]): Promise<void> {
    await this.header(fileEntry(name, size));
    // The callback form returns the last stream; a failure anywhere destroys it, so the loop throws.
    const body = transforms.length === 0 ? source : (pipeline as (...streams: unknown[]) => Readable)(source, ...transforms, () => undefined);
    if (this.signal) addAbortSignal(this.signal, body);
    let written = 0;
    for await (const chunk of body as AsyncIterable<Buffer>) {
      written += chunk.length;
      if (written > size) throw bodySizeError(`The body of ${name}`, `more than ${size} bytes`, size);
      await this.put(chunk);
    }
    if (written !== size) throw bodySizeError(`The body of ${name}`, `${written} bytes`, size);
    await this.pad(size);
  }

  /**
   * A file entry whose body `write` puts straight into the output's file descriptor — exactly
   * `size` bytes, e.g. a LayerSource's writeToFd — and resolves with what `write` returns. Only
   * for outputs with a blocking descriptor: undefined, with nothing written, for any other.
   */
  async bodyFromFd<T>(name: string, size: number, write: (fd: number) => Promise<T>): Promise<T | undefined> {
    const fd = this.sink.blockingFd;
    if (fd === undefined) return undefined;
    await this.header(fileEntry(name, size));
    const result = await write(fd);
    this.offset += size;
    await this.pad(size);
    return result;
  }

  /** Where the next entry's header starts: what renameEntry() takes. */
  get position(): number {
    return this.offset;
  }

  /**
   * Rewrites the header of the `size`-byte file entry written at `at` under `name`: for an entry
   * named after its body (a blob named by its digest, known only once the body is written). The
   * new name must give a header of the same size as the old one (same length, no pax header).
   * Only for archives into a file (TarWriter.intoFile); the entry's body is not touched.
   */
  renameEntry(at: number, name: string, size: number): void {
    const fd = this.sink.seekableFd;
    const entry = fileEntry(name, size);
    if (fd === undefined || CONTAINER_HEADERS.headerSize(entry) !== BLOCK_SIZE) {
      throw new NixdockError('INTERNAL', `Cannot rename the archive entry at ${at} to ${name}`);
    }
    const bytes = Buffer.alloc(BLOCK_SIZE);
    CONTAINER_HEADERS.write(bytes, 0, entry);
    for (let done = 0; done < bytes.length; ) done += writeSync(fd, bytes, done, bytes.length - done, at + done);
  }

  /**
   * A file entry whose body is the whole file at `path`, known to be `size` bytes of good data (a
   * verified layout blob). A file that is not exactly `size` bytes long fails the entry before
   * its last chunk is written.
   */
  async copyFile(name: string, size: number, path: string, what: string): Promise<void> {
    if (!this.sink.copiesFiles) return this.stream(name, size, createReadStream(path, { highWaterMark: COPY_CHUNK }));
    await this.header(fileEntry(name, size));
    const fd = openSync(path, 'r');
    try {
      await this.copyBody(fd, size, what);
    } finally {
      closeSync(fd);
    }
    await this.pad(size);
  }

  private async copyBody(fd: number, size: number, what: string): Promise<void> {
    const buffer = Buffer.allocUnsafe(Math.min(COPY_CHUNK, Math.max(size, 1)));
    for (let left = size; left > 0; ) {
      this.signal?.throwIfAborted();
      const read = readSync(fd, buffer, 0, Math.min(buffer.length, left), null);
      if (read === 0) throw bodySizeError(what, `${size - left} bytes`, size);
      left -= read;
      if (left === 0 && readSync(fd, Buffer.alloc(1), 0, 1, null) !== 0) throw bodySizeError(what, `more than ${size} bytes`, size);
      await this.put(buffer.subarray(0, read));
    }
  }

  private async header(entry: HeaderFields): Promise<void> {
    const bytes = Buffer.alloc(CONTAINER_HEADERS.headerSize(entry));
    CONTAINER_HEADERS.write(bytes, 0, entry);
    await this.put(bytes);
  }

  /** Zeros after a body up to the next 512-byte block. */
  private async pad(size: number): Promise<void> {
    if (blockAlign(size) > size) await this.put(ZEROS.subarray(0, blockAlign(size) - size));
  }

  private async put(bytes: Buffer): Promise<void> {
    await this.sink.write(bytes);
    this.offset += bytes.length;
  }
}

function fileEntry(name: string, size: number): HeaderFields {
  return { name, type: 'file', mode: 0o644, size, linkName: '' };
}

function bodySizeError(what: string, found: string, expected: number): NixdockError {
  return new NixdockError('LAYER_BUILD', `${what} has ${found}, but its size is ${expected} bytes`, {
    found,
    expected: `${expected} bytes`,
    hint: 'A file changed while the archive was being written; build again.',
  });
}

/** The Writable path: backpressure through `drain`, errors of the output fail the next write. */
class WritableSink implements ByteSink {
  readonly copiesFiles = false;
  private failure: Error | undefined;

  constructor(private readonly out: Writable) {
    out.on('error', (err) => (this.failure ??= err));
  }

  async write(bytes: Buffer): Promise<void> {
    if (this.failure) throw this.failure;
    if (!this.out.write(bytes)) await drained(this.out);
  }

  async end(): Promise<void> {
    this.out.end();
    await finished(this.out);
  }

  destroy(err: Error): void {
    this.out.destroy(err);
  }
}

/** Resolves on `drain`; rejects when the output fails or closes first. */
async function drained(out: Writable): Promise<void> {
  const closed = new AbortController();
  try {
    await Promise.race([
      once(out, 'drain', { signal: closed.signal }),
      once(out, 'close', { signal: closed.signal }).then(() => {
        throw new NixdockError('OUTPUT_NOT_WRITABLE', 'The archive output closed before the archive was complete');
      }),
    ]);
  } finally {
    closed.abort();
  }
}

/** A Node stdio handle (pipe, TTY, socket) exposes libuv's blocking-write switch. */
interface StdioHandle {
  setBlocking?(blocking: boolean): number;
}

/**
 * Synchronous writes straight into a file descriptor. A pipe that libuv made non-blocking is
 * switched to blocking writes while the archive is written (the kernel then waits for the reader,
 * no polling); where that is not possible, a write that would block hands the rest of its bytes
 * to the Writable and waits until they are flushed, so bytes never go out of order.
 */
class FdSink implements ByteSink {
  readonly copiesFiles = true;
  readonly blockingFd: number | undefined;
  readonly seekableFd: number | undefined;
  private sinceYield = 0;
  private readonly fallback?: Writable;
  private readonly handle?: StdioHandle;

  constructor(private readonly fd: number, opts: { blocking: boolean; seekable?: boolean; fallback?: Writable; handle?: StdioHandle }) {
    this.blockingFd = opts.blocking ? fd : undefined;
    this.seekableFd = opts.seekable ? fd : undefined;
    this.fallback = opts.fallback;
    this.handle = opts.handle;
  }

  /** A sink on `out`'s file descriptor, when it has one and nothing is queued in front of it. */
  static behind(out: Writable): FdSink | undefined {
    const fd = (out as { fd?: unknown }).fd;
    if (typeof fd !== 'number' || out.writableLength > 0 || out.destroyed) return undefined;
    const handle = (out as { _handle?: StdioHandle })._handle;
    // No libuv handle: a file (fs.SyncWriteStream), whose writes always block.
    if (handle === undefined) return new FdSink(fd, { blocking: true, fallback: out });
    const blocking = handle.setBlocking?.(true) === 0;
    return new FdSink(fd, { blocking, fallback: out, ...(blocking && { handle }) });
  }

  async write(bytes: Buffer): Promise<void> {
    for (let offset = 0; offset < bytes.length; ) {
      const written = this.writeSome(bytes, offset);
      if (written === undefined) return this.handOver(bytes.subarray(offset));
      offset += written;
    }
    this.sinceYield += bytes.length;
    if (this.sinceYield >= YIELD_EVERY) {
      this.sinceYield = 0;
      await nextTurn();
    }
  }

  /** Bytes written, or undefined when the descriptor is non-blocking and full. */
  private writeSome(bytes: Buffer, offset: number): number | undefined {
    try {
      return writeSync(this.fd, bytes, offset, bytes.length - offset);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EAGAIN' && this.fallback) return undefined;
      throw err;
    }
  }

  private async handOver(rest: Buffer): Promise<void> {
    const out = this.fallback!;
    await new Promise<void>((resolve, reject) => out.write(Buffer.from(rest), (err) => (err ? reject(err) : resolve())));
  }

  async end(): Promise<void> {
    this.restore();
  }

  destroy(): void {
    this.restore();
    // Without an error argument: nothing listens for one on stdout. The reader sees the archive
    // end early (no trailer, no manifest.json) once the failing process exits.
    this.fallback?.destroy();
  }

  private restore(): void {
    this.handle?.setBlocking?.(false);
  }
}
