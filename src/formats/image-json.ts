/**
 * Parsing the JSON documents of a base image (config, manifest, index) with errors that name the
 * image and the field, instead of a crash deep in a build.
 */
import { NixdockError } from '../errors.js';
import { isDigest } from '../digest.js';
import type { ImageConfigFile } from '../types.js';

export function parseJson(bytes: Buffer, where: string): unknown {
  try {
    return JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw invalidBase(where, undefined, 'not valid JSON', 'a JSON document', err);
  }
}

/** Checks what nixdock relies on (rootfs.diff_ids, config object) and fills harmless defaults. */
export function parseImageConfig(bytes: Buffer, where: string, layerCount: number): ImageConfigFile {
  const raw = parseJson(bytes, where) as Partial<ImageConfigFile> & Record<string, unknown>;
  if (typeof raw !== 'object' || raw === null) throw invalidBase(where, undefined, typeof raw, 'a JSON object');
  const diffIds = raw.rootfs?.diff_ids;
  if (!Array.isArray(diffIds) || !diffIds.every(isDigest)) {
    throw invalidBase(where, 'rootfs.diff_ids', JSON.stringify(diffIds)?.slice(0, 200), 'an array of sha256:<64 hex> digests');
  }
  if (diffIds.length !== layerCount) {
    throw invalidBase(where, 'rootfs.diff_ids', `${diffIds.length} diff_ids`, `one per layer of the manifest (${layerCount})`);
  }
  const config = raw.config ?? {};
  if (typeof config !== 'object' || config === null) throw invalidBase(where, 'config', typeof config, 'an object');
  return {
    ...raw,
    created: typeof raw.created === 'string' ? raw.created : '1970-01-01T00:00:01Z',
    architecture: typeof raw.architecture === 'string' ? raw.architecture : 'amd64',
    os: 'linux',
    config,
    rootfs: { type: 'layers', diff_ids: diffIds },
    history: Array.isArray(raw.history) ? raw.history : [],
  };
}

export function invalidBase(where: string, field: string | undefined, found: string | undefined, expected: string, cause?: unknown): NixdockError {
  return new NixdockError('INPUT_INVALID', `Base image ${where} is not usable${field ? `: bad ${field}` : ''}`, {
    location: { file: where, ...(field && { field }) },
    found,
    expected,
    hint: 'Use an image written by docker save, skopeo, podman or dockerTools (or re-create this one).',
    cause,
  });
}
