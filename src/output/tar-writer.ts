/**
 * The tar container of an archive output (docker-archive), written with tar-stream: its bytes
 * only need to be deterministic, not dockerTools-identical. Fixed owner and mtime on every entry,
 * so the same image gives the same archive bytes; large entries stream with backpressure.
 */
import { type Readable, type Transform, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tar, { type Header } from 'tar-stream';

const FIXED = { mtime: new Date(0), uid: 0, gid: 0, uname: '', gname: '' } as const;

export class TarWriter {
  private readonly pack = tar.pack();
  private readonly output: Promise<void>;

  constructor(out: Writable, private readonly signal?: AbortSignal) {
    this.output = pipeline(this.pack, out, { signal });
  }

  /**
   * Runs `write` (which adds the entries), then ends the archive. Any failure — of the output, a
   * source, or an abort — destroys the whole stream: a consumer never gets a complete-looking tar.
   */
  async run<T>(write: (tar: TarWriter) => Promise<T>): Promise<T> {
    const writing = write(this).then(
      (result) => {
        this.pack.finalize();
        return result;
      },
      (err: unknown) => {
        this.pack.destroy(err as Error);
        throw err;
      },
    );
    const [written, output] = await Promise.allSettled([writing, this.output]);
    if (written.status === 'rejected') throw written.reason;
    if (output.status === 'rejected') throw output.reason;
    return written.value;
  }

  async directory(name: string): Promise<void> {
    await this.entry({ name, type: 'directory', mode: 0o755 });
  }

  async file(name: string, bytes: Buffer): Promise<void> {
    await this.entry({ name, type: 'file', mode: 0o644, size: bytes.length }, bytes);
  }

  /** A file entry of exactly `size` bytes streamed from `source` through `transforms` (e.g. hashing). */
  async stream(name: string, size: number, source: Readable, ...transforms: Transform[]): Promise<void> {
    const sink = this.pack.entry({ ...FIXED, name, type: 'file', mode: 0o644, size });
    await pipeline([source, ...transforms, sink], { signal: this.signal });
  }

  private entry(header: Partial<Header> & Pick<Header, 'name'>, bytes?: Buffer): Promise<void> {
    return new Promise((resolve, reject) => {
      this.pack.entry({ ...FIXED, ...header }, bytes ?? Buffer.alloc(0), (err) => (err ? reject(err) : resolve()));
    });
  }
}
