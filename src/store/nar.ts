/**
 * Serialises a store path as a NAR (Nix ARchive) stream — without keeping it — to get exactly what
 * Nix would register for it: the NAR size, the NAR hash and the references (hash parts of other
 * store paths that occur anywhere in the NAR bytes; Nix's own scanner also runs over the NAR).
 *
 * NAR grammar (Nix's archive.cc): every string is a little-endian u64 length, the bytes, and zero
 * padding to a multiple of 8.
 *   nar   = str("nix-archive-1") node
 *   node  = "(" "type" ( "regular" ["executable" ""] "contents" <bytes>
 *                      | "symlink" "target" <target>
 *                      | "directory" { "entry" "(" "name" <name> "node" node ")" } ) ")"
 * Directory entries are in byte order of their names.
 */
import { createHash, type Hash } from 'node:crypto';
import { lstat, open, readdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { NIX_BASE32_ALPHABET, HASH_LENGTH } from './paths.js';
import { isUtf8, nonUtf8Name } from '../util/file-names.js';

export interface NarSummary {
  narSize: number;
  /** SRI form (`sha256-<base64>`), as `nix path-info --json` prints it. */
  narHash: string;
  /** Candidate hash parts that occur in the NAR. */
  hashesFound: Set<string>;
}

const READ_CHUNK = 1 << 20;

/** Streams the NAR of `physicalPath` through a hash and a reference scanner. */
export async function summariseNar(physicalPath: string, candidateHashes: ReadonlySet<string>): Promise<NarSummary> {
  const sink = new NarSink(new HashScanner(candidateHashes));
  sink.str('nix-archive-1');
  await dumpNode(physicalPath, sink, Buffer.allocUnsafe(READ_CHUNK));
  return { narSize: sink.size, narHash: `sha256-${sink.hash.digest('base64')}`, hashesFound: sink.scanner.found };
}

async function dumpNode(path: string, sink: NarSink, buffer: Buffer): Promise<void> {
  const stat = await lstat(path);
  sink.str('(');
  if (stat.isSymbolicLink()) {
    sink.str('type').str('symlink').str('target').str(await readlink(path, { encoding: 'buffer' }));
  } else if (stat.isDirectory()) {
    sink.str('type').str('directory');
    for (const name of await sortedEntries(path)) {
      if (!isUtf8(name)) throw nonUtf8Name(path, name);
      sink.str('entry').str('(').str('name').str(name).str('node');
      await dumpNode(join(path, name.toString()), sink, buffer);
      sink.str(')');
    }
  } else {
    sink.str('type').str('regular');
    if (stat.mode & 0o100) sink.str('executable').str('');
    sink.str('contents');
    await dumpContents(path, stat.size, sink, buffer);
  }
  sink.str(')');
}

/** Names in byte order (Nix sorts std::string keys), not UTF-16 order. */
async function sortedEntries(dir: string): Promise<Buffer[]> {
  const names = await readdir(dir, { encoding: 'buffer' });
  return names.sort(Buffer.compare);
}

async function dumpContents(path: string, size: number, sink: NarSink, buffer: Buffer): Promise<void> {
  sink.u64(size);
  const file = await open(path, 'r');
  try {
    let done = 0;
    while (done < size) {
      const { bytesRead } = await file.read(buffer, 0, Math.min(buffer.length, size - done), done);
      if (bytesRead === 0) throw new Error(`${path} shrank while it was being read (store paths must not change)`);
      sink.write(buffer.subarray(0, bytesRead));
      done += bytesRead;
    }
  } finally {
    await file.close();
  }
  sink.pad(size);
}

class NarSink {
  readonly hash: Hash = createHash('sha256');
  size = 0;

  constructor(readonly scanner: HashScanner) {}

  write(bytes: Buffer): void {
    this.hash.update(bytes);
    this.scanner.feed(bytes);
    this.size += bytes.length;
  }

  u64(value: number): this {
    const bytes = Buffer.alloc(8);
    bytes.writeBigUInt64LE(BigInt(value));
    this.write(bytes);
    return this;
  }

  str(value: string | Buffer): this {
    const bytes = typeof value === 'string' ? Buffer.from(value) : value;
    this.u64(bytes.length);
    this.write(bytes);
    return this.pad(bytes.length);
  }

  pad(length: number): this {
    const padding = (8 - (length % 8)) % 8;
    if (padding > 0) this.write(Buffer.alloc(padding));
    return this;
  }
}

/** Index (0..31) of each nix-base32 character, 255 for any other byte. */
const BASE32_INDEX = new Uint8Array(256).fill(255);
for (const [index, char] of [...NIX_BASE32_ALPHABET].entries()) BASE32_INDEX[char.charCodeAt(0)] = index;

/**
 * Finds 32-char runs of nix-base32 characters that are hash parts of candidate store paths.
 * Bytes arrive in chunks; the last HASH_LENGTH-1 bytes are carried over so a hash split across
 * two chunks is still found. Long base32 runs (text, base64-ish data) would otherwise cost a string
 * per byte, so a window is only turned into a string when its first 3 characters start a candidate.
 */
class HashScanner {
  readonly found = new Set<string>();
  private carry = Buffer.alloc(0);
  private readonly prefixes = new Uint8Array(32 * 32 * 32);

  constructor(private readonly candidates: ReadonlySet<string>) {
    for (const hash of candidates) this.prefixes[prefixIndex(Buffer.from(hash, 'latin1'), 0)] = 1;
  }

  feed(chunk: Buffer): void {
    if (this.candidates.size === 0) return;
    const bytes = this.carry.length === 0 ? chunk : Buffer.concat([this.carry, chunk]);
    let run = 0;
    for (let i = 0; i < bytes.length; i++) {
      if (BASE32_INDEX[bytes[i]!] === 255) {
        run = 0;
        continue;
      }
      run++;
      if (run < HASH_LENGTH) continue;
      const start = i - HASH_LENGTH + 1;
      if (this.prefixes[prefixIndex(bytes, start)] === 0) continue;
      const candidate = bytes.toString('latin1', start, i + 1);
      if (this.candidates.has(candidate)) this.found.add(candidate);
    }
    // Copy: `bytes` may be a view of a buffer the caller reuses for the next read.
    this.carry = Buffer.from(bytes.subarray(Math.max(0, bytes.length - (HASH_LENGTH - 1))));
  }
}

/** The first three base32 characters at `start` as one 15-bit number (callers ensure they are base32). */
function prefixIndex(bytes: Buffer, start: number): number {
  return (BASE32_INDEX[bytes[start]!]! << 10) | (BASE32_INDEX[bytes[start + 1]!]! << 5) | BASE32_INDEX[bytes[start + 2]!]!;
}
