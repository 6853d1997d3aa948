/** Stage 3, assemble: materialised layers → an Image (its config and manifest), nothing written. */
import { assembleImage, buildImageConfig } from '../image/config.js';
import type { Image, ImageConfigFile, Layer } from '../types.js';
import type { ImagePlan } from './plan.js';

/** The image config and manifest over the materialised layers. */
export function assemblePlanned(plan: ImagePlan, layers: Layer[]): Image {
  const config: ImageConfigFile = buildImageConfig({
    created: plan.created,
    architecture: plan.architecture,
    variant: plan.variant,
    config: plan.config,
    layers: layers.map((l) => ({ diffId: l.diffId, description: l.source.description })),
    baseHistory: plan.baseHistory,
  });
  return assembleImage({ name: plan.name, tag: plan.tag, layers, config });
}

