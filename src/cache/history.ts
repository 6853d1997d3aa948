/**
 * Build history: one row per build (status, counts, digests, error), its layers (built or
 * reused, and which store paths are new since the image's previous successful build — the
 * "why was this rebuilt" that `inspect` shows) and its outputs.
 * Callers wrap writes in an immediate transaction; this module only knows the rows.
 */
import type { BuildCounts, BuildResult, Digest, LayerResult, OutputResult } from '../types.js';
import { NixdockError } from '../errors.js';
import type { Db } from './db.js';
import { processExists } from '../util/process.js';

export type BuildStatus = 'running' | 'succeeded' | 'failed' | 'superseded';

/** One layer of a finished build (a LayerResult) with its position, 0 = bottom layer. */
export type BuildLayerInput = { index: number } & Pick<LayerResult, 'diffId' | 'size' | 'built' | 'storePaths'> & Partial<Pick<LayerResult, 'key'>>;

/** The digests a finished build names (none for a failed one). */
type ResultDigests = Partial<Pick<BuildResult, 'tag' | 'configDigest' | 'manifestDigest'>>;

export type BuildLayerRecord = BuildLayerInput & {
  /** Store paths not in the previous successful build of the same image (all of them for a first build). */
  newPaths: string[];
};

/** How a build ended, as the history records it: a BuildResult's counts and digests. */
export type BuildRecordResult = BuildCounts &
  ResultDigests & {
    status: Exclude<BuildStatus, 'running'>;
    /** Error text for failed builds (a NixdockError's message, or its JSON). */
    error?: string;
    layers?: BuildLayerInput[];
  };

/** A build as the history holds it. */
export type BuildRecord = BuildCounts &
  ResultDigests &
  Pick<BuildResult, 'image' | 'outputs'> & {
    id: number;
    reason: string;
    status: BuildStatus;
    /** Milliseconds since the epoch. */
    startedAt: number;
    finishedAt?: number;
    error?: string;
    layers: BuildLayerRecord[];
  };

interface BuildRow {
  id: number;
  image: string;
  reason: string;
  status: BuildStatus;
  started_at: number;
  finished_at: number | null;
  tag: string | null;
  config_digest: string | null;
  manifest_digest: string | null;
  layers_built: number;
  layers_reused: number;
  bytes_written: number;
  error: string | null;
}

interface LayerRow {
  position: number;
  key: string | null;
  diff_id: string;
  size: number;
  built: number;
  store_paths: string;
  new_paths: string;
}

interface OutputRow {
  format: OutputResult['format'];
  path: string | null;
  manifest_digest: string | null;
}

export class BuildHistory {
  private readonly insertBuild;
  private readonly selectRunningOfImage;
  private readonly markKilled;
  private readonly updateBuild;
  private readonly deleteLayers;
  private readonly insertLayer;
  private readonly insertOutput;
  private readonly selectBuild;
  private readonly selectLatest;
  private readonly selectLatestWithStatus;
  private readonly selectRecent;
  private readonly selectRecentOfImage;
  private readonly selectImageOfBuild;
  private readonly selectPreviousSucceeded;
  private readonly selectLayers;
  private readonly selectOutputs;

  constructor(db: Db) {
    this.insertBuild = db.prepare(
      `INSERT INTO builds (image, reason, status, started_at, pid) VALUES (?, ?, 'running', ?, ?)`,
    );
    this.selectRunningOfImage = db.prepare(`SELECT id, pid FROM builds WHERE image = ? AND status = 'running' AND pid IS NOT NULL`);
    this.markKilled = db.prepare(`UPDATE builds SET status = 'failed', finished_at = ?, error = ? WHERE id = ?`);
    this.updateBuild = db.prepare(`
      UPDATE builds SET status = @status, finished_at = @finishedAt, tag = @tag,
        config_digest = @configDigest, manifest_digest = @manifestDigest, layers_built = @layersBuilt,
        layers_reused = @layersReused, bytes_written = @bytesWritten, error = @error
      WHERE id = @id`);
    this.deleteLayers = db.prepare(`DELETE FROM build_layers WHERE build_id = ?`);
    this.insertLayer = db.prepare(`
      INSERT INTO build_layers (build_id, position, key, diff_id, size, built, store_paths, new_paths)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?)`);
    this.insertOutput = db.prepare(`
      INSERT INTO build_outputs (build_id, position, format, path, manifest_digest)
      VALUES (@buildId, (SELECT COUNT(*) FROM build_outputs WHERE build_id = @buildId), @format, @path, @manifestDigest)`);
    this.selectBuild = db.prepare(`SELECT * FROM builds WHERE id = ?`);
    this.selectLatest = db.prepare(`SELECT * FROM builds WHERE image = ? ORDER BY id DESC LIMIT 1`);
    this.selectLatestWithStatus = db.prepare(`SELECT * FROM builds WHERE image = ? AND status = ? ORDER BY id DESC LIMIT 1`);
    this.selectRecent = db.prepare(`SELECT * FROM builds ORDER BY id DESC LIMIT ?`);
    this.selectRecentOfImage = db.prepare(`SELECT * FROM builds WHERE image = ? ORDER BY id DESC LIMIT ?`);
    this.selectImageOfBuild = db.prepare(`SELECT image FROM builds WHERE id = ?`).pluck();
    this.selectPreviousSucceeded = db.prepare(
      `SELECT id FROM builds WHERE image = ? AND id < ? AND status = 'succeeded' ORDER BY id DESC LIMIT 1`,
    ).pluck();
    this.selectLayers = db.prepare(`SELECT * FROM build_layers WHERE build_id = ? ORDER BY position`);
    this.selectOutputs = db.prepare(`SELECT format, path, manifest_digest FROM build_outputs WHERE build_id = ? ORDER BY position`);
  }

  start(image: string, reason: string, now: number, pid: number): number {
    return Number(this.insertBuild.run(image, reason, now, pid).lastInsertRowid);
  }

  /**
   * A process killed mid-build (SIGKILL, power loss) never finishes its row. Rows of this image
   * still 'running' under a pid that no longer exists become 'failed'; rows of live processes (the
   * daemon, another CLI) are left alone. A recycled pid keeps a stale row 'running': harmless.
   */
  failAbandoned(image: string, now: number): number[] {
    const rows = this.selectRunningOfImage.all(image) as Array<{ id: number; pid: number }>;
    const abandoned = rows.filter((row) => row.pid !== process.pid && !processExists(row.pid));
    for (const row of abandoned) {
      this.markKilled.run(now, `The build process (pid ${row.pid}) ended without finishing the build (killed?)`, row.id);
    }
    return abandoned.map((row) => row.id);
  }

  finish(id: number, result: BuildRecordResult, now: number): void {
    const image = this.imageOf(id);
    this.updateBuild.run({
      id,
      status: result.status,
      finishedAt: now,
      tag: result.tag ?? null,
      configDigest: result.configDigest ?? null,
      manifestDigest: result.manifestDigest ?? null,
      layersBuilt: result.layersBuilt,
      layersReused: result.layersReused,
      bytesWritten: result.bytesWritten,
      error: result.error ?? null,
    });
    this.deleteLayers.run(id);
    const previous = this.previousPaths(image, id);
    for (const layer of result.layers ?? []) {
      const newPaths = previous ? layer.storePaths.filter((p) => !previous.has(p)) : layer.storePaths;
      this.insertLayer.run(id, layer.index, layer.key ?? null, layer.diffId, layer.size, layer.built ? 1 : 0,
        JSON.stringify(layer.storePaths), JSON.stringify(newPaths));
    }
  }

  addOutput(buildId: number, output: OutputResult): void {
    this.imageOf(buildId);
    this.insertOutput.run({ buildId, format: output.format, path: output.path ?? null, manifestDigest: output.manifestDigest ?? null });
  }

  /** The newest build of an image, optionally only among builds with the given status. */
  latest(image: string, status?: BuildStatus): BuildRecord | undefined {
    const row = (status === undefined ? this.selectLatest.get(image) : this.selectLatestWithStatus.get(image, status)) as BuildRow | undefined;
    return row && this.toRecord(row);
  }

  /** Newest first; all images when `image` is undefined. */
  list(image: string | undefined, limit: number): BuildRecord[] {
    const rows = (image === undefined ? this.selectRecent.all(limit) : this.selectRecentOfImage.all(image, limit)) as BuildRow[];
    return rows.map((row) => this.toRecord(row));
  }

  get(id: number): BuildRecord | undefined {
    const row = this.selectBuild.get(id) as BuildRow | undefined;
    return row && this.toRecord(row);
  }

  private imageOf(id: number): string {
    const image = this.selectImageOfBuild.get(id) as string | undefined;
    if (image === undefined) {
      throw new NixdockError('INDEX', `No build with id ${id} in the layer index`, {
        found: String(id),
        expected: 'an id returned by startBuild()',
        hint: 'The index may have been deleted or garbage-collected during the build; start a new build.',
      });
    }
    return image;
  }

  /** Every store path of the image's previous successful build, or undefined when there is none. */
  private previousPaths(image: string, id: number): Set<string> | undefined {
    const previous = this.selectPreviousSucceeded.get(image, id) as number | undefined;
    if (previous === undefined) return undefined;
    const rows = this.selectLayers.all(previous) as LayerRow[];
    return new Set(rows.flatMap((row) => JSON.parse(row.store_paths) as string[]));
  }

  private toRecord(row: BuildRow): BuildRecord {
    const layers = (this.selectLayers.all(row.id) as LayerRow[]).map((l): BuildLayerRecord => ({
      index: l.position,
      ...(l.key !== null && { key: l.key }),
      diffId: l.diff_id as Digest,
      size: l.size,
      built: l.built === 1,
      storePaths: JSON.parse(l.store_paths) as string[],
      newPaths: JSON.parse(l.new_paths) as string[],
    }));
    const outputs = (this.selectOutputs.all(row.id) as OutputRow[]).map((o): OutputResult => ({
      format: o.format,
      ...(o.path !== null && { path: o.path }),
      ...(o.manifest_digest !== null && { manifestDigest: o.manifest_digest as Digest }),
    }));
    return {
      id: row.id,
      image: row.image,
      reason: row.reason,
      status: row.status,
      startedAt: row.started_at,
      ...(row.finished_at !== null && { finishedAt: row.finished_at }),
      ...(row.tag !== null && { tag: row.tag }),
      ...(row.config_digest !== null && { configDigest: row.config_digest as Digest }),
      ...(row.manifest_digest !== null && { manifestDigest: row.manifest_digest as Digest }),
      layersBuilt: row.layers_built,
      layersReused: row.layers_reused,
      bytesWritten: row.bytes_written,
      ...(row.error !== null && { error: row.error }),
      layers,
      outputs,
    };
  }
}
