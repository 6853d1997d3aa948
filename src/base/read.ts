/**
 * `fromImage`: a base image's config and layers, read like any image (formats/source.ts), and
 * required to be of the image's own platform.
 */
import { NixdockError } from '../errors.js';
import type { FromImage } from '../config/types.js';
import type { ImageSource } from '../types.js';
import { ociPlatform, type OciPlatform } from '../image/platform.js';
import { readImage, type ReadImageOptions } from '../formats/source.js';

/** `platform`, when given, is also required of the base (checked after reading it). */
export type ReadBaseOptions = ReadImageOptions;

export async function readBaseImage(from: FromImage, opts: ReadBaseOptions): Promise<ImageSource> {
  const base = await readImage(from, opts);
  if (opts.platform) checkPlatform(base, opts.platform);
  return base;
}

/**
 * A base of another platform would give an image whose binaries cannot run together (an arm64
 * libc under amd64 programs): refused, naming both. The variant counts only when both say one.
 */
function checkPlatform(base: ImageSource, wanted: OciPlatform): void {
  const { architecture, variant } = base.config;
  if (!architecture) return;
  const found = normalised({ architecture, variant });
  const want = normalised(wanted);
  if (found.architecture === want.architecture && (found.variant === undefined || want.variant === undefined || found.variant === want.variant)) return;
  const show = (p: OciPlatform) => ['linux', p.architecture, p.variant].filter(Boolean).join('/');
  throw new NixdockError('INPUT_INVALID', `The base image ${base.description} is for ${show(found)}, but the image is for ${show(want)}`, {
    location: { field: 'fromImage' },
    found: show(found),
    expected: show(want),
    hint: 'Use a base image of the same platform (a multi-platform registry image is picked for the image\'s architecture/variant), or set the image\'s architecture to match.',
  });
}

/** OCI spelling where nixdock knows the architecture; an unknown one is compared as written. */
function normalised(p: OciPlatform): OciPlatform {
  try {
    return ociPlatform(p.architecture, p.variant);
  } catch {
    return p;
  }
}
