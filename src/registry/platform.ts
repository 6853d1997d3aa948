/** OCI platform values: the host's, parsing `linux/arm64/v8`, and choosing a manifest from an index. */
import { NixdockError } from '../errors.js';
import { hostPlatform as hostOciPlatform, ociPlatform } from '../image/platform.js';
import type { Descriptor, Platform } from '../types.js';

/** Variants assumed when an index entry names none (what containerd does). */
const DEFAULT_VARIANT: Record<string, string> = { arm64: 'v8', arm: 'v7' };

export function hostPlatform(): Platform {
  return { os: 'linux', ...hostOciPlatform() };
}

export function formatPlatform(p: { os?: string; architecture?: string; variant?: string }): string {
  return [p.os, p.architecture, p.variant].filter(Boolean).join('/');
}

/** `linux/arm64/v8`, `linux/amd64` or just `arm64` (aliases like aarch64 are normalised). */
export function parsePlatform(text: string): Platform {
  const parts = text.split('/');
  const [os, architecture, variant] = parts.length === 1 ? ['linux', parts[0]] : parts;
  if (os !== 'linux' || !architecture || parts.length > 3) {
    throw new NixdockError('INPUT_INVALID', `Not a platform nixdock can use: ${JSON.stringify(text)}`, {
      location: { field: '--platform' },
      found: text,
      expected: 'linux/ARCH[/VARIANT], e.g. linux/amd64 or linux/arm64/v8',
    });
  }
  return { os: 'linux', ...ociPlatform(architecture, variant) };
}

/** The index entry for `wanted`; a clear error listing what the index offers otherwise. */
export function selectPlatform(manifests: Descriptor[], wanted: Platform, ref: string): Descriptor {
  const variantOf = (p: Partial<Platform>) => p.variant ?? DEFAULT_VARIANT[p.architecture ?? ''];
  const match = manifests.find(
    (m) =>
      m.platform?.os === wanted.os &&
      m.platform.architecture === wanted.architecture &&
      (wanted.variant === undefined || variantOf(m.platform) === variantOf(wanted)),
  );
  if (match) return match;
  const available = manifests.filter((m) => m.platform).map((m) => formatPlatform(m.platform!));
  throw new NixdockError('INPUT_INVALID', `${ref} has no image for ${formatPlatform(wanted)}`, {
    found: available.length > 0 ? available.join(', ') : 'an index without platform entries',
    expected: formatPlatform(wanted),
    hint: 'Pick one of the platforms found with --platform (or the image spec\'s architecture/variant).',
  });
}
