/**
 * Store backends: `nix` (the machine's Nix store via the nix CLI) and `dir` (a directory laid out
 * like a store). Both produce the same Closure; nothing downstream knows which one ran.
 */
import type { StoreConfig } from '../config/types.js';
import type { Store } from '../types.js';
import { DirStore } from './dir.js';
import { NixStore } from './nix.js';

export function openStore(config: StoreConfig): Store {
  return config.type === 'nix' ? new NixStore(config.storeDir) : new DirStore(config.path, config.storeDir);
}
