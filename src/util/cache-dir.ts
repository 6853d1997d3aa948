/** The per-user cache directory: what nixdock keeps when no project (and so no cacheDir) is known. */
import { homedir } from 'node:os';
import { isAbsolute, join } from 'node:path';

/** `$XDG_CACHE_HOME/nixdock`, else `~/.cache/nixdock` (a relative XDG_CACHE_HOME is ignored, as the XDG spec says). */
export function userCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  const xdg = env.XDG_CACHE_HOME;
  return join(xdg && isAbsolute(xdg) ? xdg : join(homedir(), '.cache'), 'nixdock');
}
