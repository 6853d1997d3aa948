/**
 * Produces a planned layer's tar bytes synchronously, one caller-supplied chunk at a time: headers
 * from the HeaderTemplate, file contents read straight into the chunk. Runs in a tar worker thread
 * (worker.ts), so these blocking opens and reads overlap with hashing on the main thread.
 *
 * Why synchronous reads: a layer has tens of thousands of small files, and an async open/read/close
 * round trip through the libuv pool per file costs several times the syscalls themselves.
 */
import { closeSync, openSync, readSync } from 'node:fs';
import { NixdockError } from '../errors.js';
import { blockAlign, trailerSize, type HeaderTemplate } from './header.js';
import { physicalPathOf, type TarEntry } from './walk.js';

/** The file currently being copied into the archive. */
interface OpenFile {
  entry: TarEntry;
  fd: number;
  remaining: number;
  /** A read came back short with nothing left to read, so the file has not grown. */
  eofSeen: boolean;
}

export class TarFiller {
  private index = 0;
  private file: OpenFile | null = null;
  private padRemaining = 0;
  private trailerWritten = false;
  private written = 0;
  private readonly scratch = Buffer.alloc(1);

  constructor(
    private readonly entries: readonly TarEntry[],
    private readonly template: HeaderTemplate,
  ) {}

  /**
   * Fills `chunk` from its start and returns how many bytes it wrote; 0 once the archive is complete.
   * The chunk must have room for the largest header (a pax header holding a PATH_MAX-long name and
   * link target is under 10 KiB), or the archive would end early (TarStream checks the byte count).
   */
  fill(chunk: Buffer): number {
    let pos = 0;
    while (pos < chunk.length) {
      if (this.file !== null) {
        pos = this.copyFile(this.file, chunk, pos);
      } else if (this.padRemaining > 0) {
        const pad = Math.min(this.padRemaining, chunk.length - pos);
        chunk.fill(0, pos, pos + pad);
        this.padRemaining -= pad;
        pos += pad;
      } else if (this.index < this.entries.length) {
        const entry = this.entries[this.index]!;
        if (pos + this.template.headerSize(entry) > chunk.length) break;
        pos = this.template.write(chunk, pos, entry);
        this.index++;
        if (entry.type === 'file') this.file = openEntry(entry);
      } else if (!this.trailerWritten) {
        const trailer = trailerSize(this.written + pos);
        if (pos + trailer > chunk.length) break;
        chunk.fill(0, pos, pos + trailer);
        pos += trailer;
        this.trailerWritten = true;
      } else {
        break;
      }
    }
    this.written += pos;
    return pos;
  }

  /** Closes the file being copied, if any (after a failure or when the consumer stopped early). */
  close(): void {
    if (this.file === null) return;
    closeSync(this.file.fd);
    this.file = null;
  }

  /**
   * Copies file content into the chunk. When the rest fits, it asks for one byte more than the
   * walk saw: getting it means the file grew, which (the store being immutable) is corruption.
   */
  private copyFile(file: OpenFile, chunk: Buffer, pos: number): number {
    const room = chunk.length - pos;
    if (file.remaining > 0) {
      const ask = file.remaining < room ? file.remaining + 1 : room;
      const got = readInto(file, chunk, pos, ask);
      if (got === 0) throw sizeChanged(file.entry, 'shrank');
      if (got > file.remaining) throw sizeChanged(file.entry, 'grew');
      file.remaining -= got;
      file.eofSeen = got < ask && file.remaining === 0;
      return pos + got;
    }
    if (!file.eofSeen && readInto(file, this.scratch, 0, 1) > 0) throw sizeChanged(file.entry, 'grew');
    this.close();
    this.padRemaining = blockAlign(file.entry.size) - file.entry.size;
    return pos;
  }
}

function openEntry(entry: TarEntry): OpenFile {
  try {
    return { entry, fd: openSync(physicalPathOf(entry), 'r'), remaining: entry.size, eofSeen: false };
  } catch (err) {
    throw readFailed(entry, err);
  }
}

function readInto(file: OpenFile, into: Buffer, offset: number, length: number): number {
  try {
    return readSync(file.fd, into, offset, length, null);
  } catch (err) {
    throw readFailed(file.entry, err);
  }
}

function readFailed(entry: TarEntry, err: unknown): NixdockError {
  const path = physicalPathOf(entry);
  return new NixdockError('LAYER_BUILD', `Cannot read ${path} for the layer: ${(err as Error).message}`, {
    location: { file: path },
    hint: 'Check that the store path is intact (`nix-store --verify-path PATH`) and readable by this user.',
    cause: err,
  });
}

function sizeChanged(entry: TarEntry, how: 'grew' | 'shrank'): NixdockError {
  const path = physicalPathOf(entry);
  return new NixdockError('LAYER_BUILD', `${path} ${how} while its layer was being written`, {
    location: { file: path },
    found: `a file that ${how} after it was measured`,
    expected: `${entry.size} bytes, as when the layer was planned (store paths never change)`,
    hint: 'Something modified the store; run `nix-store --verify --check-contents --repair`, then build again.',
  });
}
