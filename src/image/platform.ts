/**
 * OCI platform values. Users (and nixpkgs) write `x86_64`, `aarch64`, `arm64v8`; image configs
 * must say `amd64`, `arm64` + `v8` — tools mis-handle anything else.
 */
import { NixdockError } from '../errors.js';

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

/** The OCI architecture of the machine nixdock runs on (Node's process.arch names). */
export function hostPlatform(): OciPlatform {
  const byNodeArch: Record<string, string> = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386', ppc64: 'ppc64le', riscv64: 'riscv64', s390x: 's390x' };
  return ociPlatform(byNodeArch[process.arch] ?? process.arch);
}
