/**
 * File names that are not UTF-8. Nix allows any bytes in a name, but a layer's pax records carry
 * UTF-8 (and Node's string paths cannot even name such a file: it reads back as U+FFFD and lstat
 * fails). nixdock refuses them with the path spelled out, invalid bytes as \xNN.
 */
import { isUtf8 } from 'node:buffer';
import { lstatSync, readdirSync, type Stats } from 'node:fs';
import { join } from 'node:path';
import { NixdockError } from '../errors.js';

export { isUtf8 };

/** The name with every byte that is not part of valid UTF-8 written as `\xNN`. */
export function escapeName(raw: Buffer): string {
  let out = '';
  let i = 0;
  while (i < raw.length) {
    const length = sequenceLength(raw, i);
    out += length > 0 ? raw.subarray(i, i + length).toString('utf8') : `\\x${raw[i]!.toString(16).padStart(2, '0')}`;
    i += Math.max(length, 1);
  }
  return out;
}

/** Length of the valid UTF-8 sequence at `i`, or 0. */
function sequenceLength(raw: Buffer, i: number): number {
  for (const length of [1, 2, 3, 4]) {
    if (i + length <= raw.length && isUtf8(raw.subarray(i, i + length))) return length;
  }
  return 0;
}

export function nonUtf8Name(dir: string, raw: Buffer): NixdockError {
  const path = `${dir}/${escapeName(raw)}`;
  return new NixdockError('INPUT_INVALID', `The file name ${path} is not valid UTF-8`, {
    location: { file: path },
    found: `the name bytes ${escapeName(raw)} (\\xNN: bytes that are not UTF-8)`,
    expected: 'UTF-8 file names (image layers record names as UTF-8)',
    hint: 'Rename the file (e.g. `convmv -f latin1 -t utf8`), or leave it out of the image.',
  });
}

/** The first name in `dir` that is not UTF-8, as an error; undefined when every name is UTF-8. */
export function findNonUtf8Name(dir: string): NixdockError | undefined {
  try {
    const raw = readdirSync(dir, { encoding: 'buffer' }).find((name) => !isUtf8(name));
    return raw && nonUtf8Name(dir, raw);
  } catch {
    return undefined;
  }
}

/** lstat of a name readdir gave; a name that is not UTF-8 (which lstat cannot find) fails as such. */
export function lstatChild(dir: string, name: string): Stats {
  try {
    return lstatSync(join(dir, name));
  } catch (err) {
    if (name.includes('\uFFFD')) throw findNonUtf8Name(dir) ?? err;
    throw err;
  }
}
