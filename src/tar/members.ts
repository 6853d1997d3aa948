/**
 * An index of a tar file's members by name → byte offset, read from the headers alone
 * (positional reads of 512-byte blocks, member contents skipped). A docker-archive can then
 * serve each layer straight from the archive file, with no copy of a possibly large tarball.
 */
import { createReadStream, type ReadStream } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { posix } from 'node:path';
import { Readable } from 'node:stream';
import { NixdockError } from '../errors.js';
import { pathComponents } from './safety.js';

export interface TarMember {
  /** Normalised: no leading `./` or `/`, no trailing `/`. */
  name: string;
  type: 'file' | 'symlink' | 'link' | 'directory' | 'other';
  /** Offset of the member's content in the tar file. */
  offset: number;
  size: number;
  linkname: string;
}

export type TarMembers = Map<string, TarMember>;

const BLOCK = 512;
/** Links followed when resolving a member (legacy `docker save` links duplicate layers). */
const MAX_LINK_HOPS = 10;

export function normaliseMemberName(name: string): string {
  return pathComponents(name).join('/');
}

export async function readTarMembers(path: string): Promise<TarMembers> {
  const file = await open(path, 'r');
  try {
    return await readIndex(file, path);
  } finally {
    await file.close();
  }
}

async function readIndex(file: FileHandle, path: string): Promise<TarMembers> {
  const index: TarMembers = new Map();
  const header = Buffer.alloc(BLOCK);
  let position = 0;
  /** Overrides from a pax (`x`) or GNU long-name (`L`/`K`) entry, applying to the next member. */
  let pending: { path?: string; linkpath?: string; size?: number } = {};
  for (;;) {
    const { bytesRead } = await file.read(header, 0, BLOCK, position);
    if (bytesRead < BLOCK || header.every((b) => b === 0)) return index;
    if (!checksumMatches(header)) throw notATar(path, position);
    const size = pending.size ?? parseNumber(header.subarray(124, 136));
    const typeflag = String.fromCharCode(header[156]!);
    const offset = position + BLOCK;
    position = offset + Math.ceil(size / BLOCK) * BLOCK;
    if (typeflag === 'x' || typeflag === 'L' || typeflag === 'K') {
      const data = Buffer.alloc(size);
      await file.read(data, 0, size, offset);
      pending = typeflag === 'x' ? { ...pending, ...parsePax(data) } : typeflag === 'L' ? { ...pending, path: cString(data) } : { ...pending, linkpath: cString(data) };
      continue;
    }
    if (typeflag === 'g') continue;
    const name = normaliseMemberName(pending.path ?? ustarName(header));
    const linkname = pending.linkpath ?? cString(header.subarray(157, 257));
    index.set(name, { name, type: memberType(typeflag), offset, size, linkname });
    pending = {};
  }
}

/** Follows symlinks and hard links to the member holding the bytes. */
export function resolveMember(index: TarMembers, name: string): TarMember | undefined {
  let member = index.get(normaliseMemberName(name));
  for (let hops = 0; member && hops < MAX_LINK_HOPS; hops++) {
    if (member.type === 'file') return member;
    if (member.type === 'symlink') member = index.get(normaliseMemberName(posix.join(posix.dirname(member.name), member.linkname)));
    else if (member.type === 'link') member = index.get(normaliseMemberName(member.linkname));
    else return undefined;
  }
  return undefined;
}

/** A fresh stream of one member's bytes. */
export function openMember(tarPath: string, member: TarMember): Readable | ReadStream {
  if (member.size === 0) return Readable.from([]);
  return createReadStream(tarPath, { start: member.offset, end: member.offset + member.size - 1 });
}

export async function readMember(tarPath: string, member: TarMember): Promise<Buffer> {
  const file = await open(tarPath, 'r');
  try {
    const data = Buffer.alloc(member.size);
    await file.read(data, 0, member.size, member.offset);
    return data;
  } finally {
    await file.close();
  }
}

function memberType(typeflag: string): TarMember['type'] {
  if (typeflag === '0' || typeflag === '\0' || typeflag === '7') return 'file';
  if (typeflag === '2') return 'symlink';
  if (typeflag === '1') return 'link';
  if (typeflag === '5') return 'directory';
  return 'other';
}

function ustarName(header: Buffer): string {
  const name = cString(header.subarray(0, 100));
  const isUstar = header.subarray(257, 262).toString('latin1') === 'ustar';
  const prefix = isUstar ? cString(header.subarray(345, 500)) : '';
  return prefix ? `${prefix}/${name}` : name;
}

function cString(field: Buffer): string {
  const end = field.indexOf(0);
  return field.subarray(0, end === -1 ? field.length : end).toString('utf8');
}

/** Octal, or GNU base-256 when the high bit of the first byte is set (sizes ≥ 8 GiB). */
function parseNumber(field: Buffer): number {
  if (field[0]! & 0x80) {
    let value = field[0]! & 0x7f;
    for (const byte of field.subarray(1)) value = value * 256 + byte;
    return value;
  }
  const text = cString(field).trim();
  return text === '' ? 0 : parseInt(text, 8);
}

function checksumMatches(header: Buffer): boolean {
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : header[i]!;
  return parseNumber(header.subarray(148, 156)) === sum;
}

/** Pax records: `<len> key=value\n`. */
function parsePax(data: Buffer): { path?: string; linkpath?: string; size?: number } {
  const result: { path?: string; linkpath?: string; size?: number } = {};
  let at = 0;
  while (at < data.length) {
    const space = data.indexOf(0x20, at);
    const length = parseInt(data.subarray(at, space).toString('latin1'), 10);
    if (space === -1 || !(length > 0)) break;
    const record = data.subarray(space + 1, at + length - 1).toString('utf8');
    const eq = record.indexOf('=');
    const key = record.slice(0, eq);
    const value = record.slice(eq + 1);
    if (key === 'path') result.path = value;
    else if (key === 'linkpath') result.linkpath = value;
    else if (key === 'size') result.size = Number(value);
    at += length;
  }
  return result;
}

function notATar(path: string, position: number): NixdockError {
  return new NixdockError('INPUT_INVALID', `${path} is not a valid tar archive (bad header checksum at byte ${position})`, {
    location: { file: path },
    expected: 'a docker-archive tarball (docker save, skopeo, dockerTools), optionally gzip-compressed',
    hint: 'Check the path; a truncated download or an unsupported compression also looks like this.',
  });
}
