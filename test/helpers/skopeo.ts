/** An image as skopeo reads it: the independent reader tests check nixdock's outputs with. */
import { execFileSync } from 'node:child_process';
import type { ContainerConfig } from '../../src/types.js';

export function skopeoInspect(ref: string, tmp: string): { Layers: string[]; Digest: string } {
  return JSON.parse(execFileSync('skopeo', ['--tmpdir', tmp, 'inspect', ref], { encoding: 'utf8' }));
}

/** The manifest as skopeo reads it (skopeo 1.9 has no LayersData, so media types come from here). */
export function skopeoManifest(ref: string, tmp: string): { mediaType: string; layers: Array<{ mediaType: string; digest: string; size: number }> } {
  return JSON.parse(execFileSync('skopeo', ['--tmpdir', tmp, 'inspect', '--raw', ref], { encoding: 'utf8' }));
}

export function skopeoConfig(ref: string, tmp: string): { rootfs: { diff_ids: string[] }; config: ContainerConfig } {
  return JSON.parse(execFileSync('skopeo', ['--tmpdir', tmp, 'inspect', '--config', ref], { encoding: 'utf8' }));
}
