/**
 * nixpkgs drop-in: read the `conf.json` of a dockerTools streamLayeredImage result and turn it
 * into the same layers the nixpkgs stream script writes (same store-path groups, same
 * owner/mtime settings → same diff_ids), so registries keep deduplicating against images
 * pushed before the switch.
 */
import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { NixdockError } from './errors.js';
import type { ContainerConfig, Digest, LayerSource, TarSettings } from './types.js';

export interface NixpkgsImage {
  name: string;
  tag: string;
  /** RFC 3339, or 'now'. */
  created: string;
  settings: TarSettings;
  storeDir: string;
  storeLayers: string[][];
  customisationLayer: LayerSource;
  config: ContainerConfig;
  architecture: string;
  /** A docker-archive base image, when the nixpkgs image had fromImage. */
  fromImage?: string;
}

interface NixpkgsConf {
  created: string;
  mtime?: string;
  uid: number | string;
  gid: number | string;
  uname: string;
  gname: string;
  store_dir?: string;
  from_image?: string | null;
  store_layers: string[][];
  customisation_layer: string;
  repo_tag: string;
  architecture: string;
  config?: ContainerConfig;
}

export async function readNixpkgsConf(file: string): Promise<NixpkgsImage> {
  const conf = await parseConf(file);
  const [name, tag] = splitRepoTag(conf.repo_tag, file);
  return {
    name,
    tag,
    created: conf.created,
    settings: {
      mtime: toEpochSeconds(conf.mtime ?? conf.created, file),
      uid: Number(conf.uid),
      gid: Number(conf.gid),
      uname: conf.uname,
      gname: conf.gname,
    },
    storeDir: conf.store_dir ?? '/nix/store',
    storeLayers: conf.store_layers,
    customisationLayer: await prebuiltLayer(conf.customisation_layer, file),
    config: conf.config ?? {},
    architecture: conf.architecture,
    ...(conf.from_image ? { fromImage: conf.from_image } : {}),
  };
}

async function parseConf(file: string): Promise<NixpkgsConf> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new NixdockError('INPUT_INVALID', `Cannot read the nixpkgs conf.json ${file}`, {
      location: { file },
      hint: 'Pass the conf.json of a streamLayeredImage result (nix build .#image.conf, or read it from the stream script).',
      cause: err,
    });
  }
  let conf: Partial<NixpkgsConf>;
  try {
    conf = JSON.parse(text);
  } catch (err) {
    throw new NixdockError('INPUT_INVALID', `${file} is not valid JSON: ${(err as Error).message}`, { location: { file } });
  }
  for (const field of ['created', 'uid', 'gid', 'uname', 'gname', 'store_layers', 'customisation_layer', 'repo_tag', 'architecture'] as const) {
    if (conf[field] === undefined) {
      throw new NixdockError('INPUT_INVALID', `${file} has no \`${field}\`: it does not look like a streamLayeredImage conf.json`, {
        location: { file, field },
        expected: 'the fields store_layers, customisation_layer, repo_tag, created, uid, gid, uname, gname, architecture, config',
      });
    }
  }
  return conf as NixpkgsConf;
}

function splitRepoTag(repoTag: string, file: string): [string, string] {
  const slash = repoTag.lastIndexOf('/');
  const colon = repoTag.lastIndexOf(':');
  if (colon <= slash) return [repoTag, 'latest'];
  const name = repoTag.slice(0, colon);
  const tag = repoTag.slice(colon + 1);
  if (!name || !tag) {
    throw new NixdockError('INPUT_INVALID', `repo_tag "${repoTag}" in ${file} is not NAME:TAG`, { location: { file, field: 'repo_tag' } });
  }
  return [name, tag];
}

/** The stream script's parse_time: "now" or an ISO timestamp, truncated to whole seconds. */
export function toEpochSeconds(value: string, file?: string): number {
  if (value === 'now') return Math.floor(Date.now() / 1000);
  const ms = Date.parse(value);
  if (Number.isNaN(ms)) {
    throw new NixdockError('INPUT_INVALID', `"${value}" is not a timestamp`, {
      location: file ? { file } : undefined,
      expected: 'RFC 3339 (e.g. 1970-01-01T00:00:01Z) or "now"',
    });
  }
  return Math.floor(ms / 1000);
}

/** nixpkgs builds the customisation layer inside Nix: a directory with layer.tar and its sha256 in `checksum`. */
async function prebuiltLayer(dir: string, file: string): Promise<LayerSource> {
  const tarPath = join(dir, 'layer.tar');
  let checksum: string;
  try {
    checksum = (await readFile(join(dir, 'checksum'), 'utf8')).trim();
  } catch (err) {
    throw new NixdockError('STORE_PATH_MISSING', `The customisation layer ${dir} named in ${file} is not there`, {
      location: { file, field: 'customisation_layer' },
      hint: 'Realise the image derivation first (nix build), so its customisation layer is in the store.',
      cause: err,
    });
  }
  const diffId = `sha256:${checksum}` as Digest;
  return {
    kind: 'nixpkgs-customisation',
    key: `nixpkgs-customisation:${checksum}`,
    storePaths: [],
    description: `customisation layer ${dir}`,
    diffId,
    size: async () => (await stat(tarPath)).size,
    open: () => createReadStream(tarPath, { highWaterMark: 1 << 20 }),
  };
}
