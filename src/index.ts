/** The public API: what a nixdock.config.ts imports. */
export type * from './types.js';
export type * from './config/types.js';
export { NixdockError } from './errors.js';
