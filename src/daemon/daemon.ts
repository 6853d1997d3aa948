/**
 * `nixdock watch` as a long-running object: config + index + scheduler + watcher + server,
 * wired through one event bus. The CLI command only parses flags, starts it and handles signals.
 */
import type { AddressInfo } from 'node:net';
import { relative, resolve } from 'node:path';
import { buildImage } from '../build/build.js';
import { loadConfig, locateConfigFile, placeholderConfig } from '../config/load.js';
import type { ImageSpec, ResolvedConfig } from '../config/types.js';
import { NixdockError, toNixdockError, type SerializedError } from '../errors.js';
import { EventBus, publicEvent } from '../events.js';
import { BuildCache } from '../cache/cache.js';
import { collectAllGarbage } from '../cache/gc.js';
import { loadedName } from '../reference.js';
import { VERSION } from '../version.js';
import { PROTOCOL_VERSION, type BuildSummaryMessage, type ClientMessage, type ServerMessage } from './protocol.js';
import { ContainerRunner } from './runner.js';
import { Scheduler } from './scheduler.js';
import { DaemonServer } from './server.js';
import { LiveState } from './state.js';
import { acquireDaemonLock, type DaemonLock } from './lock.js';
import { loadIdentity, saveIdentity } from './identity.js';
import { assertNoLiveDaemon, removeDaemonInfo, writeDaemonInfo, type DaemonInfo } from './state-file.js';
import { ProjectWatcher, type ChangeSet } from './watcher.js';

/** Same shape as buildImage; injectable so scheduler-level tests can use a stand-in. */
export type Builder = typeof buildImage;

export interface DaemonOptions {
  cwd: string;
  configFile?: string;
  /** Override config.daemon.host / port (the --host / --port flags). Port 0 picks a free port. */
  host?: string;
  port?: number;
  pingIntervalMs?: number;
  slowClientBytes?: number;
  builder?: Builder;
  /** A new token instead of the project's persistent one (`watch --rotate-token`). */
  rotateToken?: boolean;
  /** Sees every non-event message the daemon broadcasts (change, config-error, config-reloaded, error). */
  onMessage?: (message: ServerMessage) => void;
}

export class Daemon {
  readonly bus = new EventBus();
  private readonly live = new LiveState();
  private readonly scheduler: Scheduler;
  /** The `run:` containers (run on save). */
  private readonly runner: ContainerRunner;
  private server?: DaemonServer;
  private watcher?: ProjectWatcher;
  private reloading: Promise<void> = Promise.resolve();
  private gcPending?: Promise<void>;
  private changesInFlight = 0;
  /** Until the startup build is queued, the last build in the history may predate the files. */
  private startupQueued = false;
  private stopped?: Promise<void>;
  /** Held from start to stop: no second daemon on this project (./lock.ts). */
  private lock?: DaemonLock;
  info?: DaemonInfo;

  private constructor(
    private config: ResolvedConfig,
    private readonly index: BuildCache,
    private readonly options: DaemonOptions,
  ) {
    const builder = options.builder ?? buildImage;
    this.scheduler = new Scheduler(async (image, run) => {
      const spec = withRunLoad(this.spec(image));
      const building = builder(spec, { config: this.config, bus: this.bus, index: this.index, ...run });
      this.live.noteReason(image, run.buildId, run.reason); // build:started is emitted synchronously above
      return building;
    }, this.bus);
    // LiveState first, so a snapshot sent to a resyncing client already includes this event.
    this.bus.on((event) => this.live.observe(event));
    this.bus.on((event) => this.server?.broadcast({ type: 'event', event: publicEvent(event) }));
    this.bus.on((event) => {
      if (event.type === 'build:succeeded' && this.config.gc.afterBuild) this.collectGarbage();
    });
    this.runner = new ContainerRunner(config.root, (message) => this.publish(message));
    this.bus.on((event) => {
      if (event.type === 'build:succeeded') this.runContainer(event.image, event.tag, event.buildId);
    });
  }

  /** Loads the config, refuses a second daemon, listens, writes daemon.json and starts watching. */
  static async start(options: DaemonOptions): Promise<Daemon> {
    const { config, error } = await loadForStart(options);
    await assertNoLiveDaemon(config.cacheDir);
    const lock = acquireDaemonLock(config.cacheDir);
    let index: BuildCache;
    try {
      index = BuildCache.open(config.cacheDir);
    } catch (err) {
      lock.release();
      throw err;
    }
    const daemon = new Daemon(config, index, options);
    daemon.lock = lock;
    try {
      await daemon.listen();
      if (error) {
        daemon.live.configError = error;
        daemon.publish({ type: 'config-error', error });
      }
      daemon.watcher = await ProjectWatcher.start(config, {
        onChange: (change) => daemon.onChange(change),
        onError: (err) => daemon.broadcastError(new NixdockError('DAEMON', `File watching failed: ${err.message}`, { cause: err })),
      });
    } catch (err) {
      await daemon.stop();
      throw err;
    }
    return daemon;
  }

  /** Where daemon.json (with the token) lives. */
  get cacheDir(): string {
    return this.config.cacheDir;
  }

  get images(): string[] {
    return this.config.images.map((i) => i.name);
  }

  /** Queues a build of every image (the startup build). */
  buildAll(reason: string): void {
    this.startupQueued = true;
    for (const image of this.images) this.scheduler.request(image, reason);
  }

  /** Resolves when nothing is building or queued. */
  idle(): Promise<void> {
    return this.scheduler.idle();
  }

  /**
   * Stops at a layer boundary and frees everything: watcher, builds, clients, port, index,
   * daemon.json. Safe to call more than once.
   */
  stop(): Promise<void> {
    this.stopped ??= (async () => {
      await this.watcher?.close();
      await this.reloading;
      await this.scheduler.stop();
      await this.runner.stopAll();
      await this.gcPending;
      await this.server?.close();
      this.index.close();
      if (this.info) removeDaemonInfo(this.config.cacheDir);
      this.lock?.release();
    })();
    return this.stopped;
  }

  /**
   * Listens on the configured port; when it is taken (another project's daemon), on the port this
   * project's daemon had last time, else on a free one. The token and the port are kept for the
   * next start (see ./identity.ts), so open dashboards reconnect after a restart.
   */
  private async listen(): Promise<void> {
    const identity = loadIdentity(this.config.cacheDir, this.options.rotateToken);
    const { token } = identity;
    const { host, port } = this.config.daemon;
    const candidates = [...new Set([port, identity.port ?? 0, 0].filter((p, i, all) => p !== 0 || i === all.length - 1))];
    let address: AddressInfo | undefined;
    for (const candidate of candidates) {
      const server = new DaemonServer({
        host, port: candidate, token,
        pingIntervalMs: this.options.pingIntervalMs,
        slowClientBytes: this.options.slowClientBytes,
        handlers: {
          greeting: () => this.greeting(),
          snapshot: () => this.snapshot(),
          request: (message) => this.answer(message),
        },
      });
      try {
        address = await server.listen();
        this.server = server;
        break;
      } catch (err) {
        if (candidate === 0 || (err as NixdockError).found !== 'EADDRINUSE') throw err;
      }
    }
    const urlHost = host.includes(':') ? `[${host}]` : host;
    const base = `${urlHost}:${address!.port}`;
    this.info = {
      pid: process.pid, host, port: address!.port, url: `http://${base}/`, wsUrl: `ws://${base}/ws`, token,
      protocol: PROTOCOL_VERSION, startedAt: Date.now(),
    };
    if (port !== 0 && address!.port !== port) this.portNote = `port ${port} is in use; listening on ${address!.port} instead`;
    saveIdentity(this.config.cacheDir, { token, port: address!.port });
    writeDaemonInfo(this.config.cacheDir, this.info);
  }

  /** Why the daemon listens elsewhere than configured, for `watch` to print; undefined when it does not. */
  portNote?: string;

  /** The dashboard URL with the token in the fragment (never sent to any server). */
  dashboardUrl(): string {
    return `${this.info!.url}#token=${this.info!.token}`;
  }

  private spec(image: string): ImageSpec {
    const spec = this.config.images.find((i) => i.name === image);
    if (!spec) {
      throw new NixdockError('IMAGE_NOT_FOUND', `No image named ${JSON.stringify(image)} in the config`, {
        location: { file: this.config.configFile },
        found: image,
        expected: this.images.join(', ') || '(no images configured)',
        hint: 'Use one of the configured image names.',
      });
    }
    return spec;
  }

  private greeting(): ServerMessage[] {
    const hello: ServerMessage = {
      type: 'hello', protocol: PROTOCOL_VERSION, version: VERSION, pid: process.pid,
      root: this.config.root, configFile: this.config.configFile, images: this.images,
    };
    return [hello, this.snapshot()];
  }

  private snapshot(): ServerMessage {
    const images = this.live.snapshot(this.config.images, (i) => this.scheduler.stateOf(i), {
      lastBuild: (image) => toMessage(this.index.lastBuild(image)),
      history: () => [],
    }).map((image) => {
      const container = this.runner.snapshot(image.name);
      return container ? { ...image, container } : image;
    });
    return { type: 'snapshot', images, changesPending: this.changesPending(), ...(this.live.configError && { configError: this.live.configError }) };
  }

  private answer(message: ClientMessage): ServerMessage | undefined {
    switch (message.type) {
      case 'rebuild':
        this.scheduler.request(this.spec(message.image).name, 'rebuild requested by a client');
        return undefined;
      case 'history': {
        if (message.image !== undefined) this.spec(message.image);
        const builds = this.index.history(message.image, message.limit ?? 20).map((b) => toMessage(b)!);
        return { type: 'history', ...(message.image !== undefined && { image: message.image }), builds };
      }
    }
  }

  private onChange(change: ChangeSet): void {
    this.publish({ type: 'change', files: change.files, images: change.images, config: change.config });
    const reason = `changed: ${change.files.map((f) => relative(this.config.root, f) || f).join(', ')}`;
    this.changesInFlight++;
    this.reloading = this.reloading.then(async () => {
      try {
        const fromConfig = change.config ? await this.reload() : [];
        for (const image of new Set([...fromConfig, ...change.images])) {
          if (this.images.includes(image) && !this.stopped) this.scheduler.request(image, reason);
        }
      } finally {
        this.changesInFlight--;
      }
    });
  }

  /** Changes seen whose builds are not queued yet: a snapshot that says "idle" would be stale. */
  private changesPending(): boolean {
    return !this.startupQueued || this.changesInFlight > 0 || this.watcher?.hasPendingChanges() === true;
  }

  /**
   * Reloads the config; on failure keeps the last good one and tells clients. Returns the images
   * whose resolved spec changed (new ones included).
   */
  private async reload(): Promise<string[]> {
    let next: ResolvedConfig;
    try {
      next = withOverrides(await loadConfig({ cwd: this.options.cwd, configFile: this.config.configFile }), this.options);
    } catch (err) {
      const error = toNixdockError(err).toJSON();
      this.live.configError = error;
      this.publish({ type: 'config-error', error });
      return [];
    }
    const changed = changedImages(this.config, next);
    for (const old of this.config.images) {
      if (!next.images.some((i) => i.name === old.name)) this.scheduler.cancel(old.name, 'config');
      if (old.run && !next.images.find((i) => i.name === old.name)?.run) void this.runner.stop(old.name);
    }
    // The listening address stays as it is: moving it would strand every connected client.
    this.config = { ...next, daemon: { ...next.daemon, host: this.config.daemon.host, port: this.config.daemon.port } };
    this.live.configError = undefined;
    this.watcher?.update(this.config);
    this.publish({ type: 'config-reloaded', images: this.images });
    this.server?.broadcast(this.snapshot());
    return changed;
  }

  /**
   * gc after a successful build keeps disk use bounded (old images leave the output layouts).
   * Runs on the next turn, after the build's own listeners; gc leaves running builds alone.
   */
  private collectGarbage(): void {
    this.gcPending ??= new Promise<void>((resolve) => setImmediate(resolve)).then(async () => {
      this.gcPending = undefined;
      if (this.stopped) return;
      try {
        const report = await collectAllGarbage(this.index, { keepBuilds: this.config.gc.keepBuilds, dryRun: false, cacheDays: this.config.gc.cacheDays });
        const blobs = report.blobs.reduce((n, blob) => n + blob.dirs.length, 0);
        if (blobs > 0 || report.entries.length > 0) this.publish({ type: 'gc', images: report.entries.map((e) => e.image), blobs, bytes: report.bytes });
      } catch (err) {
        this.broadcastError(toNixdockError(err));
      }
    });
  }

  /** Run on save: the build loaded the image into `run.engine` (withRunLoad); replace the container. */
  private runContainer(image: string, tag: string, buildId: string): void {
    const spec = this.config.images.find((i) => i.name === image);
    if (!spec?.run || this.stopped) return;
    this.runner.replace(image, spec.run, loadedName(spec.run.engine, spec.name, tag), buildId).catch((err: unknown) => this.broadcastError(toNixdockError(err)));
  }

  private broadcastError(error: NixdockError): void {
    this.publish({ type: 'error', error: error.toJSON() });
  }

  private publish(message: ServerMessage): void {
    this.server?.broadcast(message);
    this.options.onMessage?.(message);
  }
}

/**
 * The config, or — when it exists but does not load — a placeholder without images that watches
 * the broken files: the daemon then starts, reports the error and builds once a save fixes it,
 * as a broken edit while running keeps the last good config. No config file at all still fails.
 */
async function loadForStart(options: DaemonOptions): Promise<{ config: ResolvedConfig; error?: SerializedError }> {
  try {
    return { config: withOverrides(await loadConfig({ cwd: options.cwd, configFile: options.configFile }), options) };
  } catch (err) {
    const error = toNixdockError(err);
    const configFile = error.code === 'CONFIG_NOT_FOUND' ? undefined : locateConfigFile({ cwd: options.cwd, configFile: options.configFile });
    if (!configFile) throw err;
    const broken = error.location?.file ? [resolve(options.cwd, error.location.file)] : [];
    return { config: withOverrides(placeholderConfig(configFile, broken), options), error: error.toJSON() };
  }
}

function withOverrides(config: ResolvedConfig, options: DaemonOptions): ResolvedConfig {
  return {
    ...config,
    daemon: { ...config.daemon, host: options.host ?? config.daemon.host, port: options.port ?? config.daemon.port },
  };
}

/** An image with `run:` is loaded into its engine after each build, as if `load` named it. */
function withRunLoad(spec: ImageSpec): ImageSpec {
  return spec.run && !spec.load.includes(spec.run.engine) ? { ...spec, load: [...spec.load, spec.run.engine] } : spec;
}

/** Images that are new or whose spec differs (its source location alone does not count). */
function changedImages(before: ResolvedConfig, after: ResolvedConfig): string[] {
  const key = (spec: ImageSpec) => JSON.stringify({ ...spec, source: undefined });
  const old = new Map(before.images.map((s) => [s.name, key(s)]));
  const storeChanged = JSON.stringify(before.store) !== JSON.stringify(after.store) || before.outDir !== after.outDir;
  return after.images.filter((s) => storeChanged || old.get(s.name) !== key(s)).map((s) => s.name);
}

/** The index's build record, as the protocol sends it. */
function toMessage(record: ReturnType<BuildCache['lastBuild']>): BuildSummaryMessage | undefined {
  if (!record) return undefined;
  return { ...record, layers: record.layers.map(({ index, diffId, size, built, storePaths, newPaths }) => ({ index, diffId, size, built, storePaths, newPaths })) };
}
