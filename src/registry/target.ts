/**
 * Turns an image reference into where to talk to: the registry's base URL (HTTPS, or plain
 * HTTP only for loopback registries or when the user said --insecure) and the repository.
 */
import { DEFAULT_REGISTRY, parseReference, registryOf } from '../reference.js';
import type { Digest } from '../types.js';

export interface RegistryTarget {
  /** Registry host as written (with port), e.g. `127.0.0.1:5000`, `ghcr.io`, `docker.io`. */
  registry: string;
  /** `http(s)://host[:port]` the API lives at. */
  baseUrl: string;
  repository: string;
  tag?: string;
  digest?: Digest;
}

/** Docker Hub's API is not served on the name users write. */
const API_HOSTS: Record<string, string> = { 'docker.io': 'registry-1.docker.io' };

export function isLoopbackRegistry(registry: string): boolean {
  const host = registry.startsWith('[') ? registry.slice(0, registry.indexOf(']') + 1) : registry.split(':')[0];
  return host === 'localhost' || host === '127.0.0.1' || host === '[::1]';
}

export function registryTarget(ref: string, insecure = false): RegistryTarget {
  const parsed = parseReference(ref);
  const registry = registryOf(parsed);
  // Docker Hub's official images live under library/ (what `docker pull busybox` means).
  const repository = registry === DEFAULT_REGISTRY && !parsed.repository.includes('/') ? `library/${parsed.repository}` : parsed.repository;
  const scheme = insecure || isLoopbackRegistry(registry) ? 'http' : 'https';
  return {
    registry,
    baseUrl: `${scheme}://${API_HOSTS[registry] ?? registry}`,
    repository,
    ...(parsed.tag !== undefined && { tag: parsed.tag }),
    ...(parsed.digest && { digest: parsed.digest }),
  };
}

export function formatTarget(target: RegistryTarget): string {
  const base = `${target.registry}/${target.repository}`;
  return target.digest ? `${base}@${target.digest}` : `${base}:${target.tag ?? 'latest'}`;
}
