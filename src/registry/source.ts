/**
 * The registry as an image source for readImage (formats/source.ts), loaded on first use: a build without a
 * registry base never loads the HTTP client. The import specifier is a literal, so the CLI bundle
 * follows it into a chunk of its own that shares every other module (errors.js above all: a
 * second copy would turn a REGISTRY error into an INTERNAL one).
 */
import type { RegistryPull } from '../formats/source.js';

export const registryPull: RegistryPull = async (ref, opts) => (await import('./pull.js')).pullImage(ref, opts);
