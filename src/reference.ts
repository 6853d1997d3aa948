/**
 * Image references as Docker and OCI registries understand them (the grammar of
 * github.com/distribution/reference):
 *
 *   reference := name [ ":" tag ] [ "@" digest ]
 *   name      := [ domain "/" ] path-component [ "/" path-component ]*
 *   domain    := host [ ":" port ]          (first component with "." or ":", or "localhost")
 *   path-component := [a-z0-9]+ ( ( [_.] | "__" | "-"+ ) [a-z0-9]+ )*
 *   tag       := [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
 *   digest    := "sha256:" 64 lowercase hex digits   (the only algorithm nixdock writes or checks)
 */
import { NixdockError } from './errors.js';
import type { Digest } from './types.js';

export interface ImageReference {
  /** Registry host[:port], absent when the reference names none (then it is Docker Hub). */
  registry?: string;
  /** Path inside the registry, e.g. `library/hello` or `me/app`. */
  repository: string;
  tag?: string;
  digest?: Digest;
}

export const DEFAULT_REGISTRY = 'docker.io';

const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[_.]|__|-+)[a-z0-9]+)*$/;
const DOMAIN_COMPONENT = /^(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])$/;
const PORT = /^[0-9]+$/;
const IPV6_HOST = /^\[[0-9a-fA-F:.]+\]$/;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
const SHA256_DIGEST = /^sha256:[0-9a-f]{64}$/;
/** Docker refuses full names (domain + path) longer than this. */
const MAX_NAME_LENGTH = 255;

export const REFERENCE_GRAMMAR =
  '[registry[:port]/]path[:tag][@sha256:<64 hex>]; path components are lowercase letters and digits, ' +
  'separated by ".", "_", "__" or dashes; a tag is up to 128 of [A-Za-z0-9_.-], not starting with "." or "-"';

/** Error text for a repository path (without registry), or undefined when it is valid. */
export function validateRepositoryName(name: string): string | undefined {
  if (name === '') return 'the repository name is empty';
  if (name !== name.toLowerCase()) return `the repository name \`${name}\` must be lowercase`;
  for (const component of name.split('/')) {
    if (component === '') return `the repository name \`${name}\` has an empty path component (a leading, trailing or doubled "/")`;
    if (!PATH_COMPONENT.test(component)) {
      return `the path component \`${component}\` of \`${name}\` may only hold lowercase letters and digits separated by ".", "_", "__" or "-", and must start and end with a letter or digit`;
    }
  }
  return undefined;
}

/** Error text for a tag, or undefined when it is valid. */
export function validateTag(tag: string): string | undefined {
  if (tag === '') return 'the tag is empty';
  if (tag.length > 128) return `the tag \`${tag.slice(0, 20)}…\` is ${tag.length} characters long; at most 128 are allowed`;
  if (!TAG.test(tag)) return `the tag \`${tag}\` may only hold letters, digits, "_", "." and "-", and must not start with "." or "-"`;
  return undefined;
}

/** Error text for a registry host[:port], or undefined when it is valid. */
export function validateRegistry(registry: string): string | undefined {
  const portAt = registry.startsWith('[') ? registry.indexOf(']:') + 1 : registry.lastIndexOf(':');
  const host = portAt > 0 ? registry.slice(0, portAt) : registry;
  const port = portAt > 0 ? registry.slice(portAt + 1) : undefined;
  if (port !== undefined && !PORT.test(port)) return `the registry port \`${port}\` is not a number`;
  if (IPV6_HOST.test(host)) return undefined;
  if (!host.split('.').every((c) => DOMAIN_COMPONENT.test(c))) {
    return `the registry host \`${host}\` is not a valid host name (letters, digits and inner dashes, separated by ".")`;
  }
  return undefined;
}

/** Error text for a digest, or undefined when it is valid. */
export function validateDigest(digest: string): string | undefined {
  if (SHA256_DIGEST.test(digest)) return undefined;
  if (/^sha256:/i.test(digest)) return `the digest \`${digest}\` must be "sha256:" followed by 64 lowercase hex digits`;
  return `the digest \`${digest}\` uses an algorithm nixdock does not check; only sha256 digests are supported`;
}

/** Parses a reference like `ghcr.io/me/app:1.2@sha256:…`; throws REFERENCE_INVALID naming the wrong part. */
export function parseReference(ref: string): ImageReference {
  const fail = (problem: string): never => {
    throw new NixdockError('REFERENCE_INVALID', `Invalid image reference \`${ref}\`: ${problem}`, {
      found: ref,
      expected: REFERENCE_GRAMMAR,
      hint: 'Write it like `registry.example.com:5000/team/app:1.0` or `app@sha256:<digest>`.',
    });
  };
  const at = ref.lastIndexOf('@');
  const namePart = at >= 0 ? ref.slice(0, at) : ref;
  const digest = at >= 0 ? ref.slice(at + 1) : undefined;
  const colon = namePart.lastIndexOf(':');
  const hasTag = colon > namePart.lastIndexOf('/');
  const name = hasTag ? namePart.slice(0, colon) : namePart;
  const tag = hasTag ? namePart.slice(colon + 1) : undefined;

  const { registry, repository } = splitRegistry(name);
  const problem =
    (registry !== undefined ? validateRegistry(registry) : undefined) ??
    validateRepositoryName(repository) ??
    (tag !== undefined ? validateTag(tag) : undefined) ??
    (digest !== undefined ? validateDigest(digest) : undefined);
  if (problem) fail(problem);
  if (name.length > MAX_NAME_LENGTH) fail(`the name is ${name.length} characters long; registries accept at most ${MAX_NAME_LENGTH}`);
  return {
    ...(registry !== undefined && { registry }),
    repository,
    ...(tag !== undefined && { tag }),
    ...(digest !== undefined && { digest: digest as Digest }),
  };
}

/** The first path component is a registry when it looks like a host: has "." or ":", is localhost, or has capitals. */
function splitRegistry(name: string): { registry?: string; repository: string } {
  const slash = name.indexOf('/');
  if (slash < 0) return { repository: name };
  const first = name.slice(0, slash);
  const isHost = first.includes('.') || first.includes(':') || first === 'localhost' || first !== first.toLowerCase();
  return isHost ? { registry: first, repository: name.slice(slash + 1) } : { repository: name };
}

export function formatReference(ref: ImageReference): string {
  const name = ref.registry !== undefined ? `${ref.registry}/${ref.repository}` : ref.repository;
  return `${name}${ref.tag !== undefined ? `:${ref.tag}` : ''}${ref.digest !== undefined ? `@${ref.digest}` : ''}`;
}

/** The registry to talk to: the one named, or Docker Hub. */
export function registryOf(ref: ImageReference): string {
  return ref.registry ?? DEFAULT_REGISTRY;
}

/**
 * The name under which an engine's `load` stores the image NAME:TAG, so every hint and `load:`
 * result names what `podman run` / `docker run` will find. podman qualifies a name without a
 * registry with `localhost/` (skopeo's containers-storage would say `docker.io/library/`, and a
 * later `podman run NAME` then runs the stale `localhost/` copy); docker prints short names as is.
 */
export function loadedName(engine: 'podman' | 'docker', name: string, tag: string): string {
  if (engine === 'docker' || splitRegistry(name).registry !== undefined) return `${name}:${tag}`;
  return `localhost/${name}:${tag}`;
}
