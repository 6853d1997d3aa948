/**
 * Registry credentials and the WWW-Authenticate challenge flow (Basic, and Bearer tokens from
 * the realm the registry names). Credentials never appear in messages or errors.
 */
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { NixdockError } from '../errors.js';
import { discard, httpRequest, readCapped, type RegistryLimits } from './http.js';
import type { RegistryTarget } from './target.js';
import type { AuthOptions } from './types.js';

export interface Credentials {
  username: string;
  password: string;
  /** Where they came from, for messages (never the secret itself). */
  origin: string;
}

export interface Challenge {
  scheme: 'basic' | 'bearer';
  params: Record<string, string>;
}

/** Per-registry variables: NIXDOCK_REGISTRY_<HOST>_USER, host upper-cased with non-alphanumerics as `_`. */
function envKey(registry: string): string {
  return registry.toUpperCase().replace(/[^A-Z0-9]/g, '_');
}

/** Search order of podman/skopeo, then docker. REGISTRY_AUTH_FILE first when set. */
export function defaultAuthFiles(env: NodeJS.ProcessEnv): string[] {
  const home = env.HOME ?? homedir();
  return [
    env.REGISTRY_AUTH_FILE,
    env.XDG_RUNTIME_DIR && join(env.XDG_RUNTIME_DIR, 'containers', 'auth.json'),
    join(env.XDG_CONFIG_HOME ?? join(home, '.config'), 'containers', 'auth.json'),
    join(env.DOCKER_CONFIG ?? join(home, '.docker'), 'config.json'),
  ].filter((f): f is string => Boolean(f));
}

/** Credentials for `registry` (and `repository`, for auth.json keys scoped to a namespace), or undefined. */
export function findCredentials(registry: string, repository: string, opts: AuthOptions = {}): Credentials | undefined {
  if (opts.username !== undefined && opts.password !== undefined) {
    return { username: opts.username, password: opts.password, origin: 'the given credentials' };
  }
  const env = opts.env ?? process.env;
  for (const prefix of [`NIXDOCK_REGISTRY_${envKey(registry)}`, 'NIXDOCK_REGISTRY']) {
    const username = env[`${prefix}_USER`];
    const password = env[`${prefix}_PASSWORD`];
    if (username && password !== undefined) return { username, password, origin: `${prefix}_USER/${prefix}_PASSWORD` };
  }
  for (const file of opts.authFiles ?? defaultAuthFiles(env)) {
    const found = fromAuthFile(file, registry, repository);
    if (found) return found;
  }
  return undefined;
}

function fromAuthFile(file: string, registry: string, repository: string): Credentials | undefined {
  let auths: Record<string, { auth?: string }>;
  try {
    auths = (JSON.parse(readFileSync(file, 'utf8')) as { auths?: typeof auths }).auths ?? {};
  } catch {
    return undefined; // absent or unreadable files are simply not a source
  }
  // Most specific key first: host/namespace/repo, …, host; docker's legacy keys carry a scheme.
  const parts = repository.split('/');
  const keys = parts.map((_, i) => `${registry}/${parts.slice(0, parts.length - i).join('/')}`);
  keys.push(registry, `https://${registry}`, `http://${registry}`);
  if (registry === 'docker.io') keys.push('https://index.docker.io/v1/');
  for (const key of keys) {
    const encoded = auths[key]?.auth;
    if (!encoded) continue;
    const decoded = Buffer.from(encoded, 'base64').toString('utf8');
    const sep = decoded.indexOf(':');
    if (sep > 0) return { username: decoded.slice(0, sep), password: decoded.slice(sep + 1), origin: file };
  }
  return undefined;
}

/** Parses `Bearer realm="…",service="…",scope="…"` (or Basic). Unknown schemes → undefined. */
export function parseChallenge(header: string | null): Challenge | undefined {
  if (!header) return undefined;
  const match = /^\s*(\w+)\s*(.*)$/s.exec(header);
  if (!match) return undefined;
  const scheme = match[1].toLowerCase();
  if (scheme !== 'basic' && scheme !== 'bearer') return undefined;
  const params: Record<string, string> = {};
  for (const m of match[2].matchAll(/(\w+)=(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))/g)) {
    params[m[1].toLowerCase()] = m[2] !== undefined ? m[2].replace(/\\(.)/g, '$1') : m[3];
  }
  return { scheme, params };
}

export function basicHeader(creds: Credentials): string {
  return `Basic ${Buffer.from(`${creds.username}:${creds.password}`).toString('base64')}`;
}

/**
 * Fetches a bearer token for the scopes from the challenge's realm; anonymous when no credentials.
 * The realm may be another host (Docker Hub's is auth.docker.io), and like docker and podman the
 * password goes there; but never over plain http when the registry itself is https.
 */
export async function fetchBearerToken(
  challenge: Challenge,
  scopes: string[],
  creds: Credentials | undefined,
  target: Pick<RegistryTarget, 'registry' | 'baseUrl'>,
  limits: RegistryLimits,
  signal?: AbortSignal,
): Promise<string> {
  const { registry } = target;
  const url = realmUrl(challenge, target);
  if (challenge.params.service) url.searchParams.set('service', challenge.params.service);
  for (const scope of scopes) url.searchParams.append('scope', scope);
  const r = await httpRequest({ url: url.toString(), phase: 'document', signal, ...(creds && { authorization: { origin: url.origin, header: basicHeader(creds) } }) }, limits);
  if (!r.res.ok) {
    await discard(r);
    throw authRejected(registry, r.res.status, creds);
  }
  const bytes = await readCapped(r, limits.tokenMaxBytes, 'a token');
  const body = parseTokenAnswer(bytes);
  const token = body?.token ?? body?.access_token;
  if (typeof token !== 'string' || !/^[\x21-\x7e]+$/.test(token)) {
    throw new NixdockError('REGISTRY_AUTH', `The token service of ${registry} answered without a usable token`, {
      found: body ? 'no token, or one with characters a header cannot carry' : 'an answer that is not JSON',
      expected: '{"token": "…"} or {"access_token": "…"}',
    });
  }
  return token;
}

function realmUrl(challenge: Challenge, target: Pick<RegistryTarget, 'registry' | 'baseUrl'>): URL {
  const realm = challenge.params.realm;
  let url: URL | undefined;
  try {
    url = realm ? new URL(realm) : undefined;
  } catch {
    url = undefined;
  }
  if (!url || (url.protocol !== 'https:' && url.protocol !== 'http:')) {
    throw new NixdockError('REGISTRY_AUTH', `${target.registry} asked for a bearer token but named no usable realm to get it from`, {
      found: realm ? `realm ${JSON.stringify(realm.slice(0, 200))}` : 'WWW-Authenticate: Bearer without realm',
      expected: 'an http(s) URL',
    });
  }
  if (target.baseUrl.startsWith('https:') && url.protocol === 'http:') {
    throw new NixdockError('REGISTRY_AUTH', `${target.registry} named a token service on plain http`, {
      found: `realm ${url.origin}`,
      expected: 'an https realm for an https registry',
      hint: 'Refused: the password would travel unencrypted. This is a misconfigured registry or an attack on the connection.',
    });
  }
  return url;
}

function parseTokenAnswer(bytes: Buffer): { token?: unknown; access_token?: unknown } | undefined {
  try {
    const body = JSON.parse(bytes.toString('utf8')) as unknown;
    return typeof body === 'object' && body !== null ? body : undefined;
  } catch {
    return undefined;
  }
}

export function authRejected(registry: string, status: number, creds: Credentials | undefined, detail?: string): NixdockError {
  return new NixdockError('REGISTRY_AUTH', `${registry} refused access (HTTP ${status})${detail ? `: ${detail}` : ''}`, {
    found: creds ? `credentials for user ${JSON.stringify(creds.username)} from ${creds.origin}` : 'no credentials',
    expected: 'credentials the registry accepts, with pull (and for push, push) access to the repository',
    hint: creds
      ? 'Check the user name and password (or token); log in again with `podman login` / `docker login` if they expired.'
      : 'Set NIXDOCK_REGISTRY_USER and NIXDOCK_REGISTRY_PASSWORD, or log in with `podman login` / `docker login`.',
  });
}
