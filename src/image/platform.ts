/**
 * OCI platform values, the one place for them: normalising architectures, the host's platform,
 * parsing `linux/arm64/v8`, and choosing an image index's entry for a platform (registry pulls
 * and OCI layouts alike). Users (and nixpkgs) write `x86_64`, `aarch64`, `arm64v8`; image
 * configs must say `amd64`, `arm64` + `v8` — tools mis-handle anything else.
 */
import { NixdockError } from '../errors.js';
import type { Descriptor, Platform } from '../types.js';

export interface OciPlatform {
  architecture: string;
  variant?: string;
}

/** OCI architecture → the variant it gets when none is given (undefined: none). */
const DEFAULT_VARIANT: Record<string, string | undefined> = {
  amd64: undefined,
  arm64: 'v8',
  arm: 'v7',
  '386': undefined,
  ppc64le: undefined,
  riscv64: undefined,
  s390x: undefined,
};

/** Other spellings (Nix system doubles, Docker's joined forms) → OCI architecture + variant. */
const ALIASES: Record<string, OciPlatform> = {
  x86_64: { architecture: 'amd64' },
  aarch64: { architecture: 'arm64', variant: 'v8' },
  arm64v8: { architecture: 'arm64', variant: 'v8' },
  armv7l: { architecture: 'arm', variant: 'v7' },
  armv7: { architecture: 'arm', variant: 'v7' },
  arm32v7: { architecture: 'arm', variant: 'v7' },
  armv6l: { architecture: 'arm', variant: 'v6' },
  arm32v6: { architecture: 'arm', variant: 'v6' },
  i686: { architecture: '386' },
  i386: { architecture: '386' },
  powerpc64le: { architecture: 'ppc64le' },
};

/** Normalises an architecture (+ optional variant) to OCI values; unknown ones are INPUT_INVALID. */
export function ociPlatform(architecture: string, variant?: string): OciPlatform {
  const alias = ALIASES[architecture];
  if (alias) return { architecture: alias.architecture, variant: variant ?? alias.variant };
  if (!(architecture in DEFAULT_VARIANT)) {
    throw new NixdockError('INPUT_INVALID', `Unknown image architecture "${architecture}"`, {
      location: { field: 'architecture' },
      found: architecture,
      expected: Object.keys(DEFAULT_VARIANT).join(', '),
      hint: 'Use an OCI architecture name (arm64 with variant v8, not arm64v8).',
    });
  }
  const chosen = variant ?? DEFAULT_VARIANT[architecture];
  return chosen === undefined ? { architecture } : { architecture, variant: chosen };
}

/** Node's process.arch → OCI architecture. */
const NODE_ARCHITECTURES: Partial<Record<NodeJS.Architecture, string>> = {
  x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386', ppc64: 'ppc64le', riscv64: 'riscv64', s390x: 's390x',
};

/** The OCI architecture of the machine nixdock runs on; undefined when OCI has no name for it. */
export function hostArchitecture(): string | undefined {
  return NODE_ARCHITECTURES[process.arch];
}

/** The platform of the machine nixdock runs on. */
export function hostPlatform(): Platform {
  return { os: 'linux', ...ociPlatform(hostArchitecture() ?? process.arch) };
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

/**
 * The index entry for `wanted` (variants compared with containerd's defaults: arm64 means v8);
 * an INPUT_INVALID error listing what the index offers otherwise.
 */
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
    location: { file: ref },
    found: available.length > 0 ? available.join(', ') : 'an index without platform entries',
    expected: formatPlatform(wanted),
    hint: 'Pick one of the platforms found with --platform (or the image spec\'s architecture/variant), or a single-platform image (skopeo copy --override-arch …).',
  });
}
