/** Blocking writes into a file descriptor (a file, or a pipe switched to blocking). */
import { writeSync } from 'node:fs';

/** Writes all of `bytes`: one write may take fewer than asked (a pipe, a signal). */
export function writeAll(fd: number, bytes: Uint8Array): void {
  for (let offset = 0; offset < bytes.length; ) offset += writeSync(fd, bytes, offset, bytes.length - offset);
}
