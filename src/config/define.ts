/**
 * Identity helpers that give editors the input types of nixdock.config.ts and TS spec files
 * (autocomplete, documentation on hover, errors on typos) without any runtime effect.
 */
import type { ImageSpecInput, NixdockConfigInput } from './schema.js';

export type { ImageSpecInput, NixdockConfigInput } from './schema.js';

/** `export default defineConfig({ images: […], specs: ['images/*.json'] })` in nixdock.config.ts. */
export function defineConfig(config: NixdockConfigInput): NixdockConfigInput {
  return config;
}

/** `export default defineImage({ name: 'hello', contents: […] })` in a TS spec file. */
export function defineImage(spec: ImageSpecInput): ImageSpecInput {
  return spec;
}
