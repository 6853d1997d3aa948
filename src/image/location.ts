/**
 * The one grammar for where an image is: `oci:DIR[:TAG]`, `docker-archive:PATH`, or a registry
 * reference. Used by fromImage in configs and spec files, `nixdock inspect` and `nixdock export`,
 * so a location that works in one works in all.
 */
import { statSync } from 'node:fs';
import { resolve } from 'node:path';
import type { FromImage } from '../config/types.js';

const OCI = 'oci:';
const DOCKER_ARCHIVE = 'docker-archive:';

/** Whether `text` names its format (`oci:` or `docker-archive:`) rather than being a registry reference or a name. */
export function hasFormatPrefix(text: string): boolean {
  return text.startsWith(OCI) || text.startsWith(DOCKER_ARCHIVE);
}

/**
 * A location, relative paths resolved against `baseDir`. Anything without a format prefix is a
 * registry reference (validated where it is pulled).
 *
 * `oci:DIR:TAG`: the tag is after the last colon, unless that colon belongs to the path — the
 * text after it holds a `/`, or the whole of DIR:TAG is an existing directory — so paths with
 * colons work (`oci:/tmp/a:b/layout`, and `oci:/tmp/a:b` when that directory exists).
 */
export function parseImageLocation(text: string, baseDir = process.cwd()): FromImage {
  if (text.startsWith(DOCKER_ARCHIVE)) return { kind: 'docker-archive', path: resolve(baseDir, text.slice(DOCKER_ARCHIVE.length)) };
  if (text.startsWith(OCI)) return parseOci(text.slice(OCI.length), baseDir);
  return { kind: 'registry', ref: text, allowTag: false };
}

function parseOci(rest: string, baseDir: string): FromImage {
  const colon = rest.lastIndexOf(':');
  const hasTag = colon > 0 && colon > rest.lastIndexOf('/') && !isDirectory(resolve(baseDir, rest));
  if (!hasTag) return { kind: 'oci', path: resolve(baseDir, rest) };
  return { kind: 'oci', path: resolve(baseDir, rest.slice(0, colon)), tag: rest.slice(colon + 1) };
}

function isDirectory(path: string): boolean {
  return statSync(path, { throwIfNoEntry: false })?.isDirectory() ?? false;
}
