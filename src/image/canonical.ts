/**
 * Canonical JSON for content-addressed documents (configs, manifests, indexes): the same value
 * gives the same bytes however its objects were built. Known fields come in a fixed order
 * (the order Docker and the OCI spec examples use); map-like objects (Labels, ExposedPorts,
 * Volumes, annotations) and unknown fields are sorted by key. No whitespace; undefined is dropped.
 */

/** The field order of one object kind, and the shapes of its children. */
export interface Shape {
  keys?: readonly string[];
  fields?: Readonly<Record<string, Shape>>;
  /** Shape of each array element. */
  items?: Shape;
}

export function canonicalJson(value: unknown, shape: Shape = {}): string {
  if (Array.isArray(value)) return `[${value.map((v) => canonicalJson(v ?? null, shape.items)).join(',')}]`;
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined);
  entries.sort(([a], [b]) => compareKeys(a, b, shape.keys));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v, shape.fields?.[k])}`).join(',')}}`;
}

function compareKeys(a: string, b: string, order: readonly string[] = []): number {
  const ia = order.indexOf(a);
  const ib = order.indexOf(b);
  if (ia !== -1 || ib !== -1) return (ia === -1 ? Infinity : ia) - (ib === -1 ? Infinity : ib);
  return a < b ? -1 : a > b ? 1 : 0;
}

const DESCRIPTOR: Shape = { keys: ['mediaType', 'digest', 'size', 'urls', 'annotations', 'platform'], fields: { platform: { keys: ['architecture', 'os', 'variant'] } } };

export const CONFIG_SHAPE: Shape = {
  keys: ['created', 'architecture', 'variant', 'os', 'config', 'rootfs', 'history'],
  fields: {
    config: {
      keys: ['User', 'ExposedPorts', 'Env', 'Entrypoint', 'Cmd', 'Volumes', 'WorkingDir', 'Labels', 'StopSignal', 'Healthcheck'],
      fields: { Healthcheck: { keys: ['Test', 'Interval', 'Timeout', 'StartPeriod', 'Retries'] } },
    },
    rootfs: { keys: ['type', 'diff_ids'] },
    history: { items: { keys: ['created', 'created_by', 'comment', 'empty_layer'] } },
  },
};

export const MANIFEST_SHAPE: Shape = {
  keys: ['schemaVersion', 'mediaType', 'config', 'layers', 'annotations'],
  fields: { config: DESCRIPTOR, layers: { items: DESCRIPTOR } },
};

export const INDEX_SHAPE: Shape = {
  keys: ['schemaVersion', 'mediaType', 'manifests', 'annotations'],
  fields: { manifests: { items: DESCRIPTOR } },
};
