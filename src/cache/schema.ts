/**
 * The index schema as an ordered list of migrations. `PRAGMA user_version` holds how many have
 * run, so an older database is brought forward step by step and a newer one (written by a later
 * nixdock) is recognised and set aside instead of being misread.
 *
 * Lists of store paths are stored as JSON arrays: they are always read and written whole, and
 * SQLite's json_each() covers the one query that looks inside them (gc of store_paths).
 * Times are milliseconds since the epoch.
 */

const V1 = `
CREATE TABLE store_paths (
  path      TEXT PRIMARY KEY,
  nar_size  INTEGER NOT NULL,
  nar_hash  TEXT,
  refs      TEXT NOT NULL,
  seen_at   INTEGER NOT NULL
);

CREATE TABLE layers (
  key          TEXT PRIMARY KEY,
  diff_id      TEXT NOT NULL,
  size         INTEGER NOT NULL,
  store_paths  TEXT NOT NULL,
  created_at   INTEGER NOT NULL,
  recorded_at  INTEGER NOT NULL
);
CREATE INDEX layers_by_diff_id ON layers(diff_id);

CREATE TABLE compressed (
  diff_id  TEXT NOT NULL,
  codec    TEXT NOT NULL CHECK (codec IN ('none', 'gzip', 'zstd')),
  digest   TEXT NOT NULL,
  size     INTEGER NOT NULL,
  PRIMARY KEY (diff_id, codec)
);

CREATE TABLE blob_locations (
  digest       TEXT NOT NULL,
  dir          TEXT NOT NULL,
  recorded_at  INTEGER NOT NULL,
  PRIMARY KEY (digest, dir)
);
CREATE INDEX blob_locations_by_dir ON blob_locations(dir);

CREATE TABLE builds (
  id               INTEGER PRIMARY KEY AUTOINCREMENT,
  image            TEXT NOT NULL,
  reason           TEXT NOT NULL,
  status           TEXT NOT NULL CHECK (status IN ('running', 'succeeded', 'failed', 'superseded')),
  started_at       INTEGER NOT NULL,
  finished_at      INTEGER,
  tag              TEXT,
  config_digest    TEXT,
  manifest_digest  TEXT,
  layers_built     INTEGER NOT NULL DEFAULT 0,
  layers_reused    INTEGER NOT NULL DEFAULT 0,
  bytes_written    INTEGER NOT NULL DEFAULT 0,
  error            TEXT
);
CREATE INDEX builds_by_image ON builds(image, id);

CREATE TABLE build_layers (
  build_id     INTEGER NOT NULL REFERENCES builds(id) ON DELETE CASCADE,
  position     INTEGER NOT NULL,
  key          TEXT,
  diff_id      TEXT NOT NULL,
  size         INTEGER NOT NULL,
  built        INTEGER NOT NULL CHECK (built IN (0, 1)),
  store_paths  TEXT NOT NULL,
  new_paths    TEXT NOT NULL,
  PRIMARY KEY (build_id, position)
);

CREATE TABLE build_outputs (
  build_id         INTEGER NOT NULL REFERENCES builds(id) ON DELETE CASCADE,
  position         INTEGER NOT NULL,
  format           TEXT NOT NULL,
  path             TEXT,
  manifest_digest  TEXT,
  PRIMARY KEY (build_id, position)
);
`;

/**
 * V2: builds.pid, so a build row left 'running' by a killed process can be told from one that is
 * still running (another CLI, the daemon); blob_locations.fingerprint, the stat identity of a
 * blob file when its bytes were last known to hash to its digest (see BuildCache.blobFingerprint).
 */
const V2 = `
ALTER TABLE builds ADD COLUMN pid INTEGER;
ALTER TABLE blob_locations ADD COLUMN fingerprint TEXT;
`;

/**
 * V3: store_paths.fingerprint, the stat identity of a nix store path's top-level entry when Nix
 * described it (see ClosureCache in src/types.ts): a closure whose every path still has its
 * recorded fingerprint is answered from the index instead of `nix path-info`. NULL for rows a
 * `dir` store recorded, whose directories are mutable.
 *
 * The trigger keeps layer recipes honest: a layer's key names its store paths, not their bytes,
 * so when a path comes back with another NAR hash (deleted, then rebuilt non-reproducibly) every
 * recipe containing it is forgotten and the layer is tarred again instead of served stale.
 */
const V3 = `
ALTER TABLE store_paths ADD COLUMN fingerprint TEXT;

CREATE TRIGGER store_path_content_changed
AFTER UPDATE OF nar_hash ON store_paths
WHEN old.nar_hash IS NOT NULL AND new.nar_hash IS NOT NULL AND old.nar_hash <> new.nar_hash
BEGIN
  DELETE FROM layers WHERE EXISTS (SELECT 1 FROM json_each(layers.store_paths) WHERE value = new.path);
END;
`;

/** migrations[i] takes a database from user_version i to i + 1. Append only; never edit a shipped one. */
export const MIGRATIONS: readonly string[] = [V1, V2, V3];

export const SCHEMA_VERSION = MIGRATIONS.length;
