/**
 * The runtime config of an image built on a base, as dockerTools merges it: the base's Env is
 * inherited with the image's own values winning per variable (no duplicates, base order first,
 * then the image's new variables); every other field set by the image replaces the base's.
 */
import type { ContainerConfig, ImageConfigFile } from '../types.js';

export function mergeBaseConfig(base: ImageConfigFile, own: ContainerConfig): ContainerConfig {
  const merged: Record<string, unknown> = {};
  // Docker writes unset fields as null (`"Cmd": null`); they mean "not set".
  for (const [key, value] of Object.entries(base.config ?? {})) if (value !== null && value !== undefined) merged[key] = value;
  for (const [key, value] of Object.entries(own)) if (value !== undefined) merged[key] = value;
  const env = mergeEnv(base.config?.Env ?? [], own.Env ?? []);
  if (env.length > 0) merged.Env = env;
  else delete merged.Env;
  return merged as ContainerConfig;
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
