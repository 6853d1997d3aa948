/**
 * Parses `nix path-info --json` output. Two shapes exist:
 *   - Nix ≤ 2.18 (Debian's 2.8 here): an array of `{ path, narHash, narSize, references, … }`;
 *   - newer Nix: an object keyed by store path, `{ "<path>": { narHash, narSize, references, … } }`,
 *     where an invalid path maps to `null` and references may be given as base names.
 */
import { NixdockError } from '../errors.js';
import type { StorePathInfo } from '../types.js';
import { compareStrings, storePathMissing } from './paths.js';

interface RawInfo {
  path?: unknown;
  narHash?: unknown;
  narSize?: unknown;
  references?: unknown;
  valid?: unknown;
}

export function parsePathInfoJson(json: string, storeDir: string): StorePathInfo[] {
  let data: unknown;
  try {
    data = JSON.parse(json);
  } catch (err) {
    throw unexpected('is not JSON', json, err);
  }
  const entries: Array<[string, RawInfo | null]> = Array.isArray(data)
    ? data.map((raw: RawInfo) => [String(raw?.path), raw])
    : typeof data === 'object' && data !== null
      ? Object.entries(data as Record<string, RawInfo | null>)
      : [];
  if (entries.length === 0 && !Array.isArray(data)) throw unexpected('has neither known shape', json);
  return entries.map(([path, raw]) => toInfo(path, raw, storeDir));
}

function toInfo(path: string, raw: RawInfo | null, storeDir: string): StorePathInfo {
  if (raw === null || raw.valid === false) {
    throw storePathMissing(path, 'Build or copy the path into the store first (nix-build, nix copy), or fix the path.');
  }
  if (typeof raw.narSize !== 'number' || !Array.isArray(raw.references)) {
    throw unexpected(`lacks narSize/references for ${path}`, JSON.stringify(raw));
  }
  const references = raw.references
    .map((ref) => String(ref))
    .map((ref) => (ref.startsWith('/') ? ref : `${storeDir}/${ref}`))
    .sort(compareStrings);
  return {
    path,
    narSize: raw.narSize,
    ...(typeof raw.narHash === 'string' && { narHash: raw.narHash }),
    references,
  };
}

function unexpected(what: string, text: string, cause?: unknown): NixdockError {
  return new NixdockError('NIX_FAILED', `The output of \`nix path-info --json\` ${what}`, {
    found: text.slice(0, 200),
    expected: 'a JSON array or object of path infos',
    hint: 'Check that `nix --version` is 2.4 or newer.',
    cause,
  });
}
