/**
 * The runtime config of an image built on a base, exactly as nixpkgs' stream_layered_image.py
 * (overlay_base_config) merges it: only the base's Env is inherited, the image's own values
 * winning per variable (no duplicates, base order first, then the image's new variables). Every
 * other field (Cmd, Entrypoint, WorkingDir, User, Labels, …) is the image's own: a base's Cmd
 * would otherwise run against contents it knows nothing of.
 */
import type { ContainerConfig, ImageConfigFile } from '../types.js';

export function mergeBaseConfig(base: ImageConfigFile, own: ContainerConfig): ContainerConfig {
  const { Env: _ownEnv, ...merged } = own;
  // Docker writes unset fields as null (`"Env": null`); it means "not set".
  const env = mergeEnv(base.config?.Env ?? [], own.Env ?? []);
  return env.length > 0 ? { ...merged, Env: env } : merged;
}
function mergeEnv(base: readonly string[], own: readonly string[]): string[] {
  const byName = new Map<string, string>();
  for (const entry of [...base, ...own]) byName.set(envName(entry), entry);
  return [...byName.values()];
}

/** `PATH=/bin` → `PATH`; an entry without `=` is its own name. */
function envName(entry: string): string {
  const eq = entry.indexOf('=');
  return eq === -1 ? entry : entry.slice(0, eq);
}
