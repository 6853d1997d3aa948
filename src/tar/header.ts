/**
 * The tar header encoder for reproducible layers: the exact bytes Python's `tarfile` writes in
 * PAX format (what nixpkgs' stream_layered_image.py uses), so nixdock's diff_ids equal dockerTools'.
 *
 * Facts reproduced (DESIGN.md "Layer format"): ustar headers with magic `ustar\0` + `00`, numeric
 * fields as zero-padded octal + NUL, checksum as 6 octal digits + NUL + space, devmajor/devminor
 * all NUL, no prefix field; a `././@PaxHeader` (type `x`) extended header before any entry whose
 * name, link target or owner names are non-ASCII or too long, or whose numbers overflow the field.
 */
import type { TarSettings } from '../types.js';

export const BLOCK_SIZE = 512;
/** Python's tarfile pads the archive to a multiple of this (RECORDSIZE = 20 blocks). */
export const RECORD_SIZE = 20 * BLOCK_SIZE;
/** Two zero blocks end the archive. */
export const END_OF_ARCHIVE_SIZE = 2 * BLOCK_SIZE;

export type EntryType = 'file' | 'dir' | 'symlink' | 'chardev' | 'blockdev';

/** An entry's own owner, instead of the layer's settings (customisation layers: perms, fakeRootCommands). */
export interface EntryOwner {
  uid: number;
  gid: number;
  uname: string;
  gname: string;
}

/** One archive member as the header encoder needs it. */
export interface HeaderFields {
  /** Full entry name as written (directories end with `/`). */
  name: string;
  type: EntryType;
  /** Permission bits (`st_mode & 0o7777`). */
  mode: number;
  /** Content size (0 for directories and symlinks). */
  size: number;
  /** Symlink target ('' for other types). */
  linkName: string;
  /** Overrides the settings' owner for this entry. */
  owner?: EntryOwner;
  /** Device numbers of a chardev/blockdev entry. */
  device?: { major: number; minor: number };
}

const TYPE_FLAG: Record<EntryType | 'pax', number> = { file: 0x30, symlink: 0x32, chardev: 0x33, blockdev: 0x34, dir: 0x35, pax: 0x78 };

// Field offsets and widths of a ustar header block.
const NAME = [0, 100] as const;
const MODE = [100, 8] as const;
const UID = [108, 8] as const;
const GID = [116, 8] as const;
const SIZE = [124, 12] as const;
const MTIME = [136, 12] as const;
const CHECKSUM = [148, 8] as const;
const TYPEFLAG = 156;
const LINKNAME = [157, 100] as const;
const MAGIC = 257;
const UNAME = [265, 32] as const;
const GNAME = [297, 32] as const;
const DEVMAJOR = [329, 8] as const;
const DEVMINOR = [337, 8] as const;

const PAX_HEADER_NAME = '././@PaxHeader';
// eslint-disable-next-line no-control-regex
const ASCII_ONLY = /^[\x00-\x7f]*$/;
const NON_ASCII_CODE_POINT = /[^\x00-\x7f]/gu;

/** Rounds a byte count up to whole 512-byte blocks. */
export function blockAlign(bytes: number): number {
  return Math.ceil(bytes / BLOCK_SIZE) * BLOCK_SIZE;
}

/** Bytes after the last entry: two zero blocks, then zeros up to the next 10240-byte record. */
export function trailerSize(bytesSoFar: number): number {
  const withEnd = bytesSoFar + END_OF_ARCHIVE_SIZE;
  return END_OF_ARCHIVE_SIZE + (Math.ceil(withEnd / RECORD_SIZE) * RECORD_SIZE - withEnd);
}

/** Whether a number fits an octal field of `width` bytes (width − 1 digits + NUL), as tarfile checks. */
function fitsOctal(value: number, width: number): boolean {
  return Number.isInteger(value) && value >= 0 && value < 8 ** (width - 1);
}

/** One pax record `"<len> key=value\n"`, where len counts the whole record including its own digits. */
function paxRecord(key: string, value: string): string {
  const payload = Buffer.byteLength(key) + Buffer.byteLength(value) + 3; // ' ', '=', '\n'
  let length = 0;
  for (let next = payload + 1; next !== length; next = payload + String(next).length) length = next;
  return `${length} ${key}=${value}\n`;
}

/** A text field needs a pax record when it is not pure ASCII or longer than its ustar field. */
function textNeedsPax(value: string, width: number): boolean {
  return value.length > width || !ASCII_ONLY.test(value);
}

/**
 * Per-settings constant parts of every entry header: a template block with magic, owner and
 * mtime already filled in, and the pax records the owner/mtime settings force onto every entry.
 */
export class HeaderTemplate {
  private readonly block = Buffer.alloc(BLOCK_SIZE);
  private readonly ownerRecords: string;
  private readonly mtimeRecord: string;

  constructor(settings: TarSettings) {
    const { mtime } = settings;
    this.ownerRecords = ownerRecordsOf(settings);
    this.mtimeRecord = fitsOctal(mtime, MTIME[1]) ? '' : paxRecord('mtime', String(mtime));
    writeOwner(this.block, 0, settings);
    writeOctal(this.block, MTIME, fitsOctal(mtime, MTIME[1]) ? mtime : 0);
    this.block.write('ustar\x0000', MAGIC, 'latin1');
  }

  /** The pax records an entry needs, in tarfile's order (path, linkpath, uname, gname, uid, gid, size, mtime); '' when none. */
  paxRecordsFor(entry: HeaderFields): string {
    let records = '';
    if (textNeedsPax(entry.name, NAME[1])) records += paxRecord('path', entry.name);
    if (textNeedsPax(entry.linkName, LINKNAME[1])) records += paxRecord('linkpath', entry.linkName);
    records += entry.owner ? ownerRecordsOf(entry.owner) : this.ownerRecords;
    if (!fitsOctal(entry.size, SIZE[1])) records += paxRecord('size', String(entry.size));
    return records + this.mtimeRecord;
  }

  /** Bytes of all headers for this entry (pax header + its records, then the ustar header), without the content. */
  headerSize(entry: HeaderFields): number {
    const records = this.paxRecordsFor(entry);
    return records === '' ? BLOCK_SIZE : 2 * BLOCK_SIZE + blockAlign(Buffer.byteLength(records));
  }

  /** Bytes of the whole entry: headers, content, and the content's padding to a block. */
  entrySize(entry: HeaderFields): number {
    return this.headerSize(entry) + blockAlign(entry.size);
  }

  /**
   * Writes the entry's headers into `out` at `offset` (room for headerSize(entry) bytes must be there)
   * and returns the offset after them. Content is written by the caller.
   */
  write(out: Buffer, offset: number, entry: HeaderFields): number {
    const records = this.paxRecordsFor(entry);
    let at = offset;
    if (records !== '') at = writePaxHeader(out, at, records);
    this.block.copy(out, at);
    writeUstarText(out, [at + NAME[0], NAME[1]], entry.name);
    writeOctal(out, [at + MODE[0], MODE[1]], entry.mode & 0o7777);
    writeOctal(out, [at + SIZE[0], SIZE[1]], fitsOctal(entry.size, SIZE[1]) ? entry.size : 0);
    out[at + TYPEFLAG] = TYPE_FLAG[entry.type];
    if (entry.linkName !== '') writeUstarText(out, [at + LINKNAME[0], LINKNAME[1]], entry.linkName);
    if (entry.owner) {
      out.fill(0, at + UNAME[0], at + GNAME[0] + GNAME[1]);
      writeOwner(out, at, entry.owner);
    }
    if (entry.device) {
      writeOctal(out, [at + DEVMAJOR[0], DEVMAJOR[1]], entry.device.major);
      writeOctal(out, [at + DEVMINOR[0], DEVMINOR[1]], entry.device.minor);
    }
    writeChecksum(out, at);
    return at + BLOCK_SIZE;
  }
}

/** The pax records an owner needs: names that are non-ASCII or too long, ids that overflow their field. */
function ownerRecordsOf({ uid, gid, uname, gname }: EntryOwner): string {
  return [
    textNeedsPax(uname, UNAME[1]) ? paxRecord('uname', uname) : '',
    textNeedsPax(gname, GNAME[1]) ? paxRecord('gname', gname) : '',
    fitsOctal(uid, UID[1]) ? '' : paxRecord('uid', String(uid)),
    fitsOctal(gid, GID[1]) ? '' : paxRecord('gid', String(gid)),
  ].join('');
}

/** uid, gid, uname, gname of the header block at `at` (name fields must be NUL). */
function writeOwner(out: Buffer, at: number, { uid, gid, uname, gname }: EntryOwner): void {
  writeOctal(out, [at + UID[0], UID[1]], fitsOctal(uid, UID[1]) ? uid : 0);
  writeOctal(out, [at + GID[0], GID[1]], fitsOctal(gid, GID[1]) ? gid : 0);
  writeUstarText(out, [at + UNAME[0], UNAME[1]], uname);
  writeUstarText(out, [at + GNAME[0], GNAME[1]], gname);
}

/** The `x` header (mode/uid/gid/mtime 0, empty owner names) followed by the records, padded to a block. */
function writePaxHeader(out: Buffer, offset: number, records: string): number {
  const recordBytes = Buffer.byteLength(records);
  out.fill(0, offset, offset + BLOCK_SIZE);
  writeUstarText(out, [offset + NAME[0], NAME[1]], PAX_HEADER_NAME);
  for (const field of [MODE, UID, GID, MTIME]) writeOctal(out, [offset + field[0], field[1]], 0);
  writeOctal(out, [offset + SIZE[0], SIZE[1]], recordBytes);
  out[offset + TYPEFLAG] = TYPE_FLAG.pax;
  out.write('ustar\x0000', offset + MAGIC, 'latin1');
  writeChecksum(out, offset);
  const dataStart = offset + BLOCK_SIZE;
  out.write(records, dataStart, 'utf8');
  const end = dataStart + blockAlign(recordBytes);
  out.fill(0, dataStart + recordBytes, end);
  return end;
}

/** Zero-padded octal digits filling all but the last byte, then NUL. */
function writeOctal(out: Buffer, [offset, width]: readonly [number, number], value: number): void {
  out.write(value.toString(8).padStart(width - 1, '0'), offset, width - 1, 'latin1');
  out[offset + width - 1] = 0;
}

/**
 * The ustar copy of a text field: every non-ASCII code point becomes one `?` (tarfile encodes
 * with ascii/replace), cut to the field width. The rest of the field stays as the template's NULs.
 */
function writeUstarText(out: Buffer, [offset, width]: readonly [number, number], value: string): void {
  const ascii = ASCII_ONLY.test(value) ? value : value.replace(NON_ASCII_CODE_POINT, '?');
  out.write(ascii, offset, Math.min(ascii.length, width), 'latin1');
}

/** Sum of the header bytes with the checksum field counted as spaces, written as 6 octal digits, NUL, space. */
function writeChecksum(out: Buffer, offset: number): void {
  out.fill(0x20, offset + CHECKSUM[0], offset + CHECKSUM[0] + CHECKSUM[1]);
  let sum = 0;
  for (let i = offset, end = offset + BLOCK_SIZE; i < end; i++) sum += out[i]!;
  out.write(sum.toString(8).padStart(6, '0'), offset + CHECKSUM[0], 6, 'latin1');
  out[offset + CHECKSUM[0] + 6] = 0;
  out[offset + CHECKSUM[0] + 7] = 0x20;
}
