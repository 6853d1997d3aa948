/**
 * Image assembly: the config JSON (platform, runtime settings, rootfs diff_ids, history) and
 * the Image that every output consumes. Same inputs → same config bytes → same image id on
 * any machine; that is also where a content-derived tag comes from.
 */
import { sha256 } from '../digest.js';
import { NixdockError } from '../errors.js';
import type { ContainerConfig, Digest, HistoryEntry, Image, ImageConfigFile, Layer } from '../types.js';
import { CONFIG_SHAPE, canonicalJson } from './canonical.js';
import { ociPlatform } from './platform.js';

export interface ImageConfigOptions {
  /** RFC 3339 (kept as written, so nixpkgs' values round-trip) or 'now'. */
  created: string;
  architecture: string;
  variant?: string;
  config: ContainerConfig;
  /** Every layer of the image in order, base layers included. */
  layers: Array<{ diffId: Digest; description: string }>;
  /** A base image's history; it covers the first (its non-empty entries) layers. */
  baseHistory?: HistoryEntry[];
}

/** RFC 3339 date-time: date, `T` (or space), time, optional fraction, then `Z` or an offset. */
const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;

export function buildImageConfig(opts: ImageConfigOptions): ImageConfigFile {
  const created = resolveCreated(opts.created);
  const platform = ociPlatform(opts.architecture, opts.variant);
  return {
    created,
    architecture: platform.architecture,
    ...(platform.variant !== undefined && { variant: platform.variant }),
    os: 'linux',
    config: opts.config,
    rootfs: { type: 'layers', diff_ids: opts.layers.map((l) => l.diffId) },
    history: buildHistory(opts.layers, opts.baseHistory ?? [], created),
  };
}

function resolveCreated(created: string): string {
  if (created === 'now') return new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  if (RFC3339.test(created) && !Number.isNaN(Date.parse(created))) return created;
  throw new NixdockError('INPUT_INVALID', `"created" is not an RFC 3339 timestamp`, {
    location: { field: 'created' },
    found: JSON.stringify(created),
    expected: 'an RFC 3339 date-time such as 1970-01-01T00:00:01Z, or "now"',
    hint: 'Write the time zone explicitly (Z or ±hh:mm); container tools reject other date formats.',
  });
}

/**
 * Tools (docker history, some registries) assume exactly one non-empty history entry per layer:
 * the base image's entries cover its layers, and each further layer gets its own.
 */
function buildHistory(layers: ImageConfigOptions['layers'], baseHistory: HistoryEntry[], created: string): HistoryEntry[] {
  const coveredByBase = Math.min(baseHistory.filter((h) => !h.empty_layer).length, layers.length);
  const own = layers.slice(coveredByBase).map((l) => ({ created, created_by: l.description, comment: 'nixdock' }));
  return [...baseHistory, ...own];
}

/** Canonical bytes: fixed key order, no whitespace. The image id is their sha256. */
export function serializeConfig(config: ImageConfigFile): Buffer {
  return Buffer.from(canonicalJson(config, CONFIG_SHAPE));
}

export interface AssembleOptions {
  name: string;
  /** Absent: the first 32 hex characters of the config digest (stable across machines). */
  tag?: string;
  layers: Layer[];
  config: ImageConfigFile;
}

const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;

export function assembleImage(opts: AssembleOptions): Image {
  checkLayersMatchConfig(opts.layers, opts.config);
  const configBytes = serializeConfig(opts.config);
  const configDigest = sha256(configBytes);
  const tag = opts.tag ?? configDigest.slice(7, 39);
  if (!TAG.test(tag)) {
    throw new NixdockError('REFERENCE_INVALID', `"${tag}" is not a valid image tag`, {
      location: { field: 'tag' },
      found: tag,
      expected: 'letters, digits, _ . - (at most 128, not starting with . or -)',
      hint: 'Pick a tag such as "latest" or "1.2.3", or leave it out to derive one from the image content.',
    });
  }
  return { name: opts.name, tag, layers: opts.layers, config: opts.config, configBytes, configDigest };
}

/** An image whose config names other layers than it carries would be rejected by every loader. */
function checkLayersMatchConfig(layers: Layer[], config: ImageConfigFile): void {
  const fromLayers = layers.map((l) => l.diffId).join(',');
  if (fromLayers === config.rootfs.diff_ids.join(',')) return;
  throw new NixdockError('INTERNAL', 'The image config lists different layers than the image has', {
    found: fromLayers,
    expected: config.rootfs.diff_ids.join(','),
  });
}
