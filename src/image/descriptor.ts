/**
 * Descriptors from documents nixdock did not write (registry manifests and indexes, base image
 * layouts): every field used later is checked here first, so no digest, size or media type from
 * outside reaches a file name, an allocation or a format decision unchecked.
 */
import { isDigest } from '../digest.js';
import { NixdockError } from '../errors.js';
import type { Descriptor } from '../types.js';

/** RFC 6838 type/subtype with the OCI `+suffix` and parameters-free form registries send. */
const MEDIA_TYPE = /^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}\/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$/;

export function isMediaType(value: unknown): value is string {
  return typeof value === 'string' && MEDIA_TYPE.test(value);
}

/** A byte count: an integer from 0 to 2^53-1 (JSON allows -1, 1e400 and 0.5; none is a size). */
export function isSize(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

/** Why `value` is not a descriptor (undefined when it is one). */
export function descriptorProblem(value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return `not an object (${value === null ? 'null' : Array.isArray(value) ? 'array' : typeof value})`;
  const d = value as Record<string, unknown>;
  if (!isDigest(d.digest)) return `digest ${show(d.digest)} is not sha256:<64 hex>`;
  if (!isSize(d.size)) return `size ${show(d.size)} is not a non-negative integer`;
  if (!isMediaType(d.mediaType)) return `mediaType ${show(d.mediaType)} is not a media type`;
  if (d.annotations !== undefined && !isStringMap(d.annotations)) return 'annotations are not a map of strings';
  if (d.platform !== undefined && (typeof d.platform !== 'object' || d.platform === null)) return 'platform is not an object';
  return undefined;
}

/** The descriptor, or INPUT_INVALID naming the document and field (e.g. `layers[2]`). */
export function checkDescriptor(value: unknown, where: string, field: string): Descriptor {
  const problem = descriptorProblem(value);
  if (problem) {
    throw new NixdockError('INPUT_INVALID', `${where} has a bad descriptor at ${field}: ${problem}`, {
      location: { file: where, field },
      found: show(value),
      expected: '{"mediaType": "type/subtype", "digest": "sha256:<64 hex>", "size": <non-negative integer>}',
      hint: 'The image (or the registry serving it) is malformed or hostile; nothing was read from it.',
    });
  }
  return value as Descriptor;
}

/** Every element of a descriptor list, checked; a list that is not an array is an error too. */
export function checkDescriptors(value: unknown, where: string, field: string): Descriptor[] {
  if (!Array.isArray(value)) {
    throw new NixdockError('INPUT_INVALID', `${where} has no ${field} list`, {
      location: { file: where, field },
      found: show(value),
      expected: 'an array of descriptors',
    });
  }
  return value.map((d, i) => checkDescriptor(d, where, `${field}[${i}]`));
}

function isStringMap(value: unknown): boolean {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && Object.values(value).every((v) => typeof v === 'string');
}

/** A short rendering of untrusted JSON for a message (never the whole thing). */
function show(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 120 ? `${text.slice(0, 120)}…` : text;
}
