/**
 * The resolved (validated, defaults applied, paths absolute) configuration the rest of
 * nixdock works with. The user-facing input shapes live in ./schema.ts; its parse output
 * must be assignable to these types.
 */
import type { Codec, ContainerConfig, Installable, LayerStrategy, OutputFormat, SystemGroup, SystemUser } from '../types.js';

/** Where a spec came from, so errors can point at it. */
export interface SpecSource {
  /** Absolute path of the config or spec file. */
  file: string;
  /** Field path of the image inside that file, e.g. `images[1]` or `` (a one-image spec file). */
  field: string;
}

/** One entry of `contents`, normalised. */
export type ContentsEntry =
  | { kind: 'storePath'; path: string }
  | { kind: 'installable'; installable: Installable }
  /** A local directory copied into the image root (dockerTools copyToRoot); `path` is absolute. */
  | { kind: 'localDir'; path: string };

/** A base image (dockerTools fromImage). */
export type FromImage =
  /** Registry reference; pinned by digest unless allowTag. */
  | { kind: 'registry'; ref: string; allowTag: boolean }
  /** name/tag: dockerTools' fromImageName/fromImageTag, choosing one image of a multi-image archive. */
  | { kind: 'docker-archive'; path: string; name?: string; tag?: string }
  | { kind: 'oci'; path: string; tag?: string };

/** One `perms` entry: `path` absolute in the image, `mode` as a number. */
export interface PermSpec {
  path: string;
  uid?: number;
  gid?: number;
  mode?: number;
  recursive?: boolean;
}

export interface ImageSpec {
  name: string;
  /** Absent: derived from the image content (stable across machines). */
  tag?: string;
  /** `contents`, or `copyToRoot` entries when singleLayer is set. */
  contents: ContentsEntry[];
  /**
   * Set by `copyToRoot` (dockerTools buildImage): contents copied into the root and, with their
   * closure, one layer; `keepContentsDirlinks` keeps symlinks to directories as symlinks.
   */
  singleLayer?: { keepContentsDirlinks: boolean };
  config: ContainerConfig;
  /** Total layer budget: base + store + customisation layers. 2..127, default 100. */
  maxLayers: number;
  /** Default 'stable'. */
  layering: LayerStrategy;
  /** RFC 3339 timestamp or 'now'. Default 1970-01-01T00:00:01Z. */
  created: string;
  /** RFC 3339 timestamp or 'now' for file mtimes. Default 1970-01-01T00:00:01Z (not `created`, as in dockerTools). */
  mtime: string;
  uid: number;
  gid: number;
  uname: string;
  gname: string;
  /** OCI platform values: amd64, arm64, arm, 386, ppc64le, riscv64, s390x. Default: the host's. */
  architecture: string;
  variant?: string;
  /** bash run in the customisation tree, sandboxed, before it is packed (dockerTools extraCommands). */
  extraCommands?: string;
  /** Run as root chrooted into the image (base + contents, store read-only); its changes become one more layer. */
  runAsRoot?: string;
  /** bash run after extraCommands under fakeroot; its chown/chmod/mknod land in the layer headers. */
  fakeRootCommands?: string;
  /** fakeRootCommands run chrooted into the image root (dockerTools enableFakechroot). */
  enableFakechroot?: boolean;
  /** Owners and modes of customisation layer paths; applied last. */
  perms: PermSpec[];
  /** /etc/passwd, /etc/group, /etc/shadow entries and home directories (shadowSetup/fakeNss). */
  users: SystemUser[];
  groups: SystemGroup[];
  /** A shell in the store linked as /bin/sh (dockerTools.binSh). */
  binSh?: string;
  /** An env in the store linked as /usr/bin/env (dockerTools.usrBinEnv). */
  usrBinEnv?: string;
  /** A cacert store path or CA bundle file linked at the usual bundle paths (dockerTools.caCertificates). */
  caCertificates?: string;
  /** /tmp with mode 1777. Default false. */
  tmp: boolean;
  /** Default true: store paths go into the image. false: only the customisation layer (dockerTools' includeStorePaths). */
  includeStorePaths: boolean;
  /** Default false: include a Nix database registering the closure (dockerTools includeNixDB). */
  includeNixDB: boolean;
  fromImage?: FromImage;
  /** Absolute path to a nixpkgs streamLayeredImage conf.json used verbatim instead of contents/config. */
  nixpkgsConf?: string;
  /** Compression of layers in OCI layout outputs and pushes. Default 'none' for layouts. */
  compression: Codec;
  /** Registry references pushed after each build (`build` and `watch`). */
  push: string[];
  /** Load into these engines after each build. */
  load: Array<'podman' | 'docker'>;
  /** Extra files/globs (relative to the project root) the daemon watches for this image. */
  watch: string[];
  /** `watch` runs a container from each successful build (run on save). */
  run?: RunSpec;
  source: SpecSource;
}

/** `run:` of an image: the engine `watch` loads each build into and runs it with. */
export interface RunSpec {
  engine: 'podman' | 'docker';
  /** Extra `ENGINE run` arguments, before the image (e.g. --env, --volume, --ulimit). */
  args: string[];
  /** `--publish` values: "8080", "8080:80", "127.0.0.1:8080:80/tcp". */
  ports: string[];
}

export type StoreConfig =
  | { type: 'nix'; storeDir: string }
  /** A directory laid out like a store; `path` is absolute. storeDir is the logical store dir (default /nix/store). */
  | { type: 'dir'; path: string; storeDir: string };

export interface DaemonConfig {
  host: string;
  port: number;
  /** Quiet period before a change triggers a build. */
  debounceMs: number;
  /** Extra globs to watch, relative to the root. */
  watch: string[];
}

export interface ResolvedConfig {
  /** Absolute path of the config file (or of package.json when the `nixdock` key was used). */
  configFile: string;
  /** Project root: the config file's directory. */
  root: string;
  store: StoreConfig;
  outDir: string;
  cacheDir: string;
  /** Default output formats of `nixdock build`. Default ['oci']. */
  formats: OutputFormat[];
  daemon: DaemonConfig;
  /** Registry references pushes reuse layers from (from) and the shared cache repository (registry). */
  cache: { from: string[]; registry?: string };
  /** keepBuilds: builds per image gc keeps; afterBuild: `watch` runs gc after each successful build; cacheDays: unused cached base files go after this. */
  gc: { keepBuilds: number; afterBuild: boolean; cacheDays: number };
  images: ImageSpec[];
  /** Every file the config depended on: the config file, what it imports, matched spec files. The daemon watches these. */
  dependencies: string[];
  /** Spec-file globs as written (relative to root), so the daemon can notice new files. */
  specGlobs: string[];
}
