/**
 * The daemon's WebSocket protocol: one discriminated union each way, shared by the server,
 * `nixdock events` and (by shape) the dashboard's app.js. docs/protocol.md documents it.
 *
 * Versioning: PROTOCOL_VERSION changes only when a message changes incompatibly; new message
 * types and new optional fields are added without a bump, so clients must ignore what they
 * do not know.
 */
import type { SerializedError } from '../errors.js';
import type { BuildEvent } from '../events.js';
import type { Digest, OutputResult } from '../types.js';

export const PROTOCOL_VERSION = 1;

/** Subprotocol the server selects; browsers require the server to pick one of those offered. */
export const SUBPROTOCOL = 'nixdock.v1';
/** A client may carry its token as a second offered subprotocol: `nixdock.token.<token>`. */
export const TOKEN_SUBPROTOCOL_PREFIX = 'nixdock.token.';

/** Largest client message the server accepts (bigger ones close the socket with 1009). */
export const MAX_CLIENT_MESSAGE_BYTES = 64 * 1024;

export type ImageState = 'idle' | 'queued' | 'running';

/** One layer of a recorded build, as the index stores it. */
export interface LayerSummary {
  index: number;
  diffId: Digest;
  size: number;
  built: boolean;
  storePaths: string[];
  /** Store paths not in the previous build of the image: why the layer was rebuilt. */
  newPaths?: string[];
}

/** A finished build as clients see it (from the index's build history). */
export interface BuildSummaryMessage {
  /** The index's build row id (build events carry the daemon's string buildId instead). */
  id: number;
  image: string;
  reason?: string;
  status: 'running' | 'succeeded' | 'failed' | 'superseded' | string;
  startedAt: number;
  finishedAt?: number;
  tag?: string;
  configDigest?: Digest;
  manifestDigest?: Digest;
  layersBuilt: number;
  layersReused: number;
  bytesWritten: number;
  /** Error text of a failed build. */
  error?: string;
  layers: LayerSummary[];
  outputs: OutputResult[];
}

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
}

export type ServerMessage =
  | { type: 'hello'; protocol: number; version: string; pid: number; root: string; configFile: string; images: string[] }
  /** changesPending: files changed and the builds they cause are not queued yet (the states are about to change). */
  | { type: 'snapshot'; images: ImageSnapshot[]; changesPending?: boolean; configError?: SerializedError }
  | { type: 'event'; event: BuildEvent }
  /** Files changed (after debouncing) and which images that affects. */
  | { type: 'change'; files: string[]; images: string[]; config: boolean }
  /** The config or a spec file failed to load; the last good config keeps running. */
  | { type: 'config-error'; error: SerializedError }
  /** The config loaded again after an error (or changed); the image list may differ. */
  | { type: 'config-reloaded'; images: string[] }
  | { type: 'history'; image?: string; builds: BuildSummaryMessage[] }
  /** `watch` ran gc after a build (gc.afterBuild) and it removed something. */
  | { type: 'gc'; images: string[]; blobs: number; bytes: number }
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
