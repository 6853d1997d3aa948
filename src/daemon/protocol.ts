/**
 * The daemon's WebSocket protocol: one discriminated union each way, shared by the server,
 * `nixdock events` and (by shape) the dashboard's app.js. docs/protocol.md documents it.
 *
 * Versioning: PROTOCOL_VERSION changes only when a message changes incompatibly; new message
 * types and new optional fields are added without a bump, so clients must ignore what they
 * do not know.
 */
import type { SerializedError } from '../errors.js';
import type { BuildLayerRecord, BuildRecord } from '../cache/history.js';
import type { PublicBuildEvent } from '../events.js';

export const PROTOCOL_VERSION = 1;

/** Subprotocol the server selects; browsers require the server to pick one of those offered. */
export const SUBPROTOCOL = 'nixdock.v1';
/** A client may carry its token as a second offered subprotocol: `nixdock.token.<token>`. */
export const TOKEN_SUBPROTOCOL_PREFIX = 'nixdock.token.';

/** Largest client message the server accepts (bigger ones close the socket with 1009). */
export const MAX_CLIENT_MESSAGE_BYTES = 64 * 1024;

export type ImageState = 'idle' | 'queued' | 'running';

/**
 * One layer of a recorded build, as the build history holds it: index, diffId, size, built,
 * storePaths, and newPaths (store paths not in the previous build of the image: why the layer
 * was rebuilt). Derived from the history record (itself derived from BuildResult); the wire
 * shape is part of the versioned protocol (docs/protocol.md).
 */
export type LayerSummary = Pick<BuildLayerRecord, 'index' | 'diffId' | 'size' | 'built' | 'storePaths'> & Partial<Pick<BuildLayerRecord, 'newPaths'>>;

/**
 * A finished build as clients see it: the build history's record (`id` is the history row id;
 * build events carry the daemon's string buildId instead), its layers as LayerSummary.
 */
export type BuildSummaryMessage = Omit<BuildRecord, 'reason' | 'status' | 'layers'> & {
  reason?: string;
  status: BuildRecord['status'] | string;
  layers: LayerSummary[];
};

/** The build in flight for an image, so a client joining mid-build can draw its progress. */
export interface CurrentBuild {
  buildId: string;
  reason: string;
  startedAt: number;
  bytesDone: number;
  bytesTotal: number;
  layersDone: number;
  layersTotal: number;
}

export interface ImageSnapshot {
  name: string;
  state: ImageState;
  /** Where the image is defined (config or spec file). */
  source: { file: string; field: string };
  current?: CurrentBuild;
  lastBuild?: BuildSummaryMessage;
  /** The last failure of this image, until a build succeeds. */
  error?: SerializedError;
  /** The image's `run` container (watch only): its status and its last log lines. */
  container?: ContainerSnapshot;
}

/**
 * The container `watch` runs from an image's latest build (`run:` on the image). `started` once
 * the engine runs it; `exited` when its process ended by itself (exitCode); `stopped` when
 * watch stopped it (a rebuild replaced it, or watch exits); `failed` when it could not start.
 */
export interface ContainerStatus {
  state: 'started' | 'exited' | 'stopped' | 'failed';
  engine: 'podman' | 'docker';
  /** The container's name: nixdock-IMAGE-<8 hex of the project root>. */
  name: string;
  /** The image it runs, as the engine's `load` named it (`localhost/app:TAG` for podman). */
  ref: string;
  /** The daemon build that produced that image. */
  buildId: string;
  /** When it reached this state (ms since the epoch). */
  since: number;
  exitCode?: number;
  error?: SerializedError;
}

/** One line the container wrote (cut at 8 KiB). */
export interface ContainerLogLine {
  stream: 'stdout' | 'stderr';
  line: string;
  time: number;
}

export type ContainerSnapshot = ContainerStatus & { log: ContainerLogLine[] };

export type ServerMessage =
  | { type: 'hello'; protocol: number; version: string; pid: number; root: string; configFile: string; images: string[] }
  /** changesPending: files changed and the builds they cause are not queued yet (the states are about to change). */
  | { type: 'snapshot'; images: ImageSnapshot[]; changesPending?: boolean; configError?: SerializedError }
  | { type: 'event'; event: PublicBuildEvent }
  /** Files changed (after debouncing) and which images that affects. */
  | { type: 'change'; files: string[]; images: string[]; config: boolean }
  /** The config or a spec file failed to load; the last good config keeps running. */
  | { type: 'config-error'; error: SerializedError }
  /** The config loaded again after an error (or changed); the image list may differ. */
  | { type: 'config-reloaded'; images: string[] }
  | { type: 'history'; image?: string; builds: BuildSummaryMessage[] }
  /** `watch` ran gc after a build (gc.afterBuild) and it removed something. */
  | { type: 'gc'; images: string[]; blobs: number; bytes: number }
  /** The image's `run` container changed state (started, exited, stopped, failed). */
  | { type: 'container'; image: string; container: ContainerStatus }
  /** A line the image's `run` container wrote to its stdout or stderr. */
  | ({ type: 'container-log'; image: string; name: string } & ContainerLogLine)
  /** A client message was refused; the connection stays open. */
  | { type: 'error'; error: SerializedError; request?: string };

export type ClientMessage =
  | { type: 'rebuild'; image: string }
  | { type: 'history'; image?: string; limit?: number };

export type ServerMessageType = ServerMessage['type'];

const HISTORY_LIMIT_MAX = 500;

/** Why a client message was refused: the text goes back to the client in an `error` message. */
export class ProtocolViolation extends Error {}

/**
 * Parses and validates one client message. Throws ProtocolViolation with a message saying what
 * was wrong and what is accepted.
 */
export function parseClientMessage(text: string): ClientMessage {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new ProtocolViolation('message is not valid JSON; send one JSON object per WebSocket text message');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ProtocolViolation('message must be a JSON object with a "type" field');
  }
  const msg = value as Record<string, unknown>;
  switch (msg.type) {
    case 'rebuild':
      if (typeof msg.image !== 'string' || msg.image === '') {
        throw new ProtocolViolation('"rebuild" needs "image": the name of a configured image');
      }
      return { type: 'rebuild', image: msg.image };
    case 'history': {
      if (msg.image !== undefined && typeof msg.image !== 'string') throw new ProtocolViolation('"history.image" must be a string');
      const limit = msg.limit ?? 20;
      if (typeof limit !== 'number' || !Number.isInteger(limit) || limit < 1 || limit > HISTORY_LIMIT_MAX) {
        throw new ProtocolViolation(`"history.limit" must be an integer from 1 to ${HISTORY_LIMIT_MAX}`);
      }
      return { type: 'history', ...(msg.image !== undefined && { image: msg.image as string }), limit };
    }
    default:
      throw new ProtocolViolation(`unknown message type ${JSON.stringify(msg.type)}; known: "rebuild", "history"`);
  }
}
