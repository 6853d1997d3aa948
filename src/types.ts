/**
 * The few types that carry nixdock from a spec to an image on disk.
 *
 * Data flows one way through the pipeline stages (see DESIGN.md):
 *   ImageSpec ─resolve→ Closure ─plan→ LayerGroup[] ─build→ Layer[] ─assemble→ Image ─output→ OutputResult
 * A stage imports only the types it consumes and produces from here.
 */
import type { Readable } from 'node:stream';

/** `sha256:<64 hex>` */
export type Digest = `sha256:${string}`;

// ───────────────────────────── store ─────────────────────────────

/** One store path with what Nix knows about it. */
export interface StorePathInfo {
  /** Absolute path, e.g. /nix/store/<hash>-name */
  path: string;
  /** NAR serialisation size in bytes (used as the "size" of a path when layering). */
  narSize: number;
  /** `sha256:<nix-base32>` as Nix prints it, when known. */
  narHash?: string;
  /** Store paths this path refers to (absolute, may include itself). */
  references: string[];
}

/** The transitive closure of some root store paths. Same shape whichever store produced it. */
export interface Closure {
  /** The store directory, e.g. /nix/store (no trailing slash). */
  storeDir: string;
  /** The paths the closure was asked for, sorted. */
  roots: string[];
  /** Every path in the closure, keyed by absolute path. */
  paths: Map<string, StorePathInfo>;
  /**
   * The stat identity (see ClosureCache) of each path's top-level entry, taken no later than Nix
   * answered for it; only the nix store sets it. Recorded with the path infos, it lets the next
   * build skip asking Nix while the paths stay the same files.
   */
  fingerprints?: ReadonlyMap<string, string>;
}

/** A store path as remembered by a ClosureCache, with the fingerprint it had when Nix described it. */
export interface FingerprintedPathInfo {
  info: StorePathInfo;
  fingerprint: string;
}

/**
 * Closures remembered between runs (the build cache implements it), for the nix store only.
 * Sound because Nix never changes a valid path's references, size or hash; a path changes only by
 * being deleted and created again, which gives its top-level entry a new inode and ctime — the
 * fingerprint `dev:ino:ctimeNs` (mtime is useless: Nix sets it to 1).
 */
export interface ClosureCache {
  /** Every path reachable from `roots` through recorded references, or undefined when any of them was not recorded with a fingerprint. */
  recordedClosure(roots: string[]): FingerprintedPathInfo[] | undefined;
}

/** A Nix installable as written in a spec's `contents`. */
export type Installable =
  | { kind: 'file'; file: string; attr?: string }
  | { kind: 'flake'; ref: string };

export interface Store {
  readonly kind: 'nix' | 'dir';
  /** Store directory, no trailing slash. */
  readonly storeDir: string;
  /**
   * Closure of the given store paths (one constant-size batch of work, never a process per path).
   * A store that can trust `cache` answers from it when it still matches the store.
   */
  closure(roots: string[], signal?: AbortSignal, cache?: ClosureCache): Promise<Closure>;
  /**
   * Where a store path's files are on this machine. The nix store: the path itself; a `dir` store:
   * the same name under its directory. Layers name entries by store path and read from here.
   */
  physicalPath(storePath: string): string;
  /** Realise an installable to its output store paths (nix backend only; `dir` throws NIX_MISSING-style errors). */
  /** `onLog` sees each line of Nix's log (stderr) as it comes. */
  realise(installable: Installable, cwd: string, signal?: AbortSignal, onLog?: (line: string) => void): Promise<string[]>;
}

// ───────────────────────────── layers ─────────────────────────────

/** Owner and time settings applied to every entry of a store layer (dockerTools' uid/gid/uname/gname/mtime). */
export interface TarSettings {
  /** Seconds since the epoch written into every entry's mtime. */
  mtime: number;
  uid: number;
  gid: number;
  uname: string;
  gname: string;
}

/** A planned group of store paths that becomes one layer. */
export interface LayerGroup {
  /** Store paths in the order their entries are written. */
  paths: string[];
  /** Why this group exists: 'path' (one store path), 'merged' (stable), 'popular', 'bulk' (popularity). */
  reason: string;
}

export type LayerStrategy = 'stable' | 'popularity';

/**
 * A layer that can be produced: everything needed to write its bytes,
 * and an exact size computed from lstat metadata alone (the format is deterministic).
 * `key` identifies the recipe (what goes in + settings + format version) and is what the index caches on.
 */
export interface LayerSource {
  readonly kind: 'store' | 'customisation' | 'base' | 'nixpkgs-customisation';
  /** Stable recipe key (hex sha256 of the recipe). */
  readonly key: string;
  /** Store paths contained (empty for non-store layers). */
  readonly storePaths: readonly string[];
  /** One line for the image history (`created_by`/`comment`). */
  readonly description: string;
  /** Exact uncompressed tar size in bytes. */
  size(): Promise<number>;
  /** The uncompressed tar bytes. Each call starts a fresh stream. */
  open(): Readable;
  /**
   * The same bytes written straight into a blocking file descriptor (a blob file, a stdout pipe)
   * by the thread that produces them, or only hashed when `fd` is undefined; resolves with their
   * sha256. Nothing else may write to `fd` until it settles. Much faster than open() (no stream,
   * and the calling thread stays free); sources that tar in a worker thread offer it.
   */
  readonly writeToFd?: (fd: number | undefined, opts?: WriteToFdOptions) => Promise<Digest>;
  /**
   * A file holding exactly the bytes open() streams (a layout blob), when there is one: a sink
   * may copy it directly, which is faster than the stream (docker-archive on a file descriptor).
   */
  readonly tarFile?: string;
  /** Known diff_id (e.g. from a base image or the index); absent until built. */
  readonly diffId?: Digest;
}

export interface WriteToFdOptions {
  signal?: AbortSignal;
  /** Bytes written since the last call (a few calls per layer: progress bars). */
  onProgress?: (bytes: number) => void;
  /**
   * The bytes' sha256 is already known (a recipe the build cache recorded): they are not hashed
   * again, only counted against the planned size, and this digest is what resolves.
   */
  knownDigest?: Digest;
}

/** Compressed form of a layer blob. */
export type Codec = 'none' | 'gzip' | 'zstd';

export interface CompressedBlob {
  codec: Codec;
  digest: Digest;
  size: number;
}

/** A layer whose digest is known. Bytes are opened lazily, only when a sink needs them. */
export interface Layer {
  source: LayerSource;
  /** sha256 of the uncompressed tar. */
  diffId: Digest;
  /** Uncompressed size. */
  size: number;
  /** Whether this build wrote the tar (false: reused from the index/blob cache). */
  built: boolean;
  /** Compressed variants known for this layer, keyed by codec. */
  compressed: Partial<Record<Codec, CompressedBlob>>;
  /**
   * Sinks check only the bytes' length instead of hashing them again: they come from a blob
   * already known to hash to diffId (just written, or trusted by its stat fingerprint), or are
   * regenerated from a recipe whose diffId the build cache recorded when it hashed them (store
   * paths never change; the fresh walk's tar size must still equal the recorded size).
   */
  verifiedBytes?: boolean;
  /** Descriptor annotations read with the layer (an image read back from a layout); else derived from the source. */
  annotations?: Record<string, string>;
}

// ───────────────────────────── image ─────────────────────────────

/** A user of the image's /etc/passwd (spec field `users`). */
export interface SystemUser {
  name: string;
  uid: number;
  /** Default: the uid. */
  gid?: number;
  /** Default /root for uid 0, /var/empty for nobody, else /home/NAME. */
  home?: string;
  /** Default /bin/sh. */
  shell?: string;
  description?: string;
  /** Default true (except for nobody): create the home directory, owned by the user. */
  createHome?: boolean;
}

/** A group of the image's /etc/group (spec field `groups`). */
export interface SystemGroup {
  name: string;
  gid: number;
  members?: string[];
}

/** OCI image config `config` section (the runtime settings). */
export interface ContainerConfig {
  User?: string;
  ExposedPorts?: Record<string, Record<string, never>>;
  Env?: string[];
  Entrypoint?: string[];
  Cmd?: string[];
  Volumes?: Record<string, Record<string, never>>;
  WorkingDir?: string;
  Labels?: Record<string, string>;
  StopSignal?: string;
  Healthcheck?: {
    Test?: string[];
    Interval?: number;
    Timeout?: number;
    StartPeriod?: number;
    Retries?: number;
  };
}

export interface HistoryEntry {
  created?: string;
  created_by?: string;
  comment?: string;
  empty_layer?: boolean;
}

/** The image config JSON (application/vnd.oci.image.config.v1+json). */
export interface ImageConfigFile {
  created: string;
  architecture: string;
  variant?: string;
  os: 'linux';
  config: ContainerConfig;
  rootfs: { type: 'layers'; diff_ids: Digest[] };
  history: HistoryEntry[];
}

export interface Platform {
  os: 'linux';
  architecture: string;
  variant?: string;
}

/** An OCI content descriptor. */
export interface Descriptor {
  mediaType: string;
  digest: Digest;
  size: number;
  annotations?: Record<string, string>;
  platform?: Platform;
}

/** A fully assembled image: config bytes are final, layers known. */
export interface Image {
  /** Repository name, e.g. `hello` or `ghcr.io/me/hello`. */
  name: string;
  tag: string;
  layers: Layer[];
  config: ImageConfigFile;
  /** Canonical serialised config; its sha256 is the image id. */
  configBytes: Buffer;
  configDigest: Digest;
}

/**
 * An image read from where it is kept — an OCI layout, a docker-archive, a registry (through the
 * pull cache) — as go-containerregistry's v1.Image: its config and its layers, whose bytes are
 * read only when asked for. Read by formats/source.ts (readImage), used by fromImage, export and
 * inspect; the reading side of the formats, as the ImageSink list (build/sinks.ts) is the writing side.
 */
export interface ImageSource {
  /** Where it came from, for messages and history, e.g. `docker-archive:/path/x.tar`. */
  readonly description: string;
  readonly config: ImageConfigFile;
  /** Bottom to top. */
  readonly layers: readonly SourceLayer[];
}

/**
 * A layer of an ImageSource (v1.Layer): diff_id known from the config; open() gives the
 * uncompressed tar, verified against the diff_id and checked for unsafe entries on first read.
 */
export interface SourceLayer extends LayerSource {
  readonly kind: 'base';
  readonly diffId: Digest;
  /** The stored blob when it is kept compressed with `codec` (push uploads it as is); else undefined. */
  openCompressed(codec: Codec): Readable | undefined;
}

// ───────────────────────────── outputs ─────────────────────────────

/** The file formats `--format` chooses from: the file sinks of src/build/sinks.ts. */
export type OutputFormat = import('./build/sinks.js').OutputFormat;

export interface OutputResult {
  format: import('./build/sinks.js').OutputKind;
  /** File or directory written (absent for stream/load). */
  path?: string;
  /** Manifest digest as written in this output (OCI manifest with the chosen layer compression). */
  manifestDigest?: Digest;
  /** Where the image went for registry/podman/docker outputs: the reference pushed or loaded as. */
  ref?: string;
}

// ───────────────────────────── build result ─────────────────────────────

/** One layer of a finished build. */
export interface LayerResult {
  diffId: Digest;
  /** Digest of the blob as stored (the compressed one for gzip/zstd layouts). */
  digest: Digest;
  size: number;
  /** Whether this build wrote the tar (false: reused from the cache). */
  built: boolean;
  storePaths: string[];
  kind: LayerSource['kind'];
  /** The recipe key the cache knows this layer by. */
  key: string;
}

/**
 * What one build of one image produced. The one result shape: the `build:succeeded` event, the
 * history record, the daemon protocol's build summary and `nixdock build --json` are derived
 * from it (Pick and mapped types), so a field added here is added everywhere or nowhere.
 */
export interface BuildResult {
  image: string;
  tag: string;
  configDigest: Digest;
  manifestDigest?: Digest;
  layers: LayerResult[];
  outputs: OutputResult[];
  layersBuilt: number;
  layersReused: number;
  bytesWritten: number;
  ms: number;
}

/** The counts every build has, finished or not. */
export type BuildCounts = Pick<BuildResult, 'layersBuilt' | 'layersReused' | 'bytesWritten'>;
