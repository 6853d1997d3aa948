/**
 * Pieces every planner of a store image uses: tar settings and times from the spec, the closure
 * grown by what the customisation wrote, its NAR size.
 */
import type { ImageSpec } from '../config/types.js';
import { toEpochSeconds } from '../nixpkgs.js';
import type { Closure, Store, TarSettings } from '../types.js';
import type { PlanContext } from './plan.js';

/** The closure grown by the customisation layer's references (their own closures included), when it lacks any. */
export async function withReferences(closure: Closure, references: readonly string[], spec: ImageSpec, store: Store, ctx: PlanContext): Promise<Closure> {
  if (!spec.includeStorePaths || references.every((path) => closure.paths.has(path))) return closure;
  const grown = await store.closure([...new Set([...closure.roots, ...references])].sort(), ctx.signal, ctx.index);
  ctx.index.recordStorePaths([...grown.paths.values()], grown.fingerprints);
  return grown;
}

export function narSizeOf(closure: Closure): number {
  let narSize = 0;
  for (const info of closure.paths.values()) narSize += info.narSize;
  return narSize;
}

export function tarSettings(spec: ImageSpec): TarSettings {
  return { mtime: toEpochSeconds(spec.mtime), uid: spec.uid, gid: spec.gid, uname: spec.uname, gname: spec.gname };
}

export function resolveTime(value: string): string {
  return value === 'now' ? new Date().toISOString().replace(/\.\d{3}Z$/, 'Z') : value;
}
