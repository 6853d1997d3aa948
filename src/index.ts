/** The public API: what a nixdock.config.ts imports. */
export type * from './types.js';
export type * from './config/types.js';
export type { NixdockConfigInput, ImageSpecInput } from './config/define.js';
export { defineConfig, defineImage } from './config/define.js';
export { NixdockError } from './errors.js';
