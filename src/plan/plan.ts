/**
 * Layer planning: groups a closure's store paths into at most `budget` layers.
 * `budget` is the number of store layers available (the caller has already subtracted base-image
 * and customisation layers). Plans are deterministic: the same closure gives the same plan on any
 * machine, whatever the order of the input Map.
 */
import { NixdockError } from '../errors.js';
import type { Closure, LayerGroup, LayerStrategy } from '../types.js';
import { closureGraph } from './graph.js';
import { planPopularity } from './popularity.js';
import { planStable } from './stable.js';

export interface PlanOptions {
  strategy: LayerStrategy;
  budget: number;
}

export function planLayers(closure: Closure, opts: PlanOptions): LayerGroup[] {
  if (!Number.isInteger(opts.budget) || opts.budget < 1) {
    throw new NixdockError('INPUT_INVALID', `No room for store layers: ${opts.budget} left of the layer budget`, {
      found: String(opts.budget),
      expected: 'at least 1 store layer',
      hint: 'Raise maxLayers: it counts base-image layers and the customisation layer too.',
    });
  }
  if (closure.paths.size === 0) return [];
  const graph = closureGraph(closure);
  return opts.strategy === 'popularity' ? planPopularity(graph, opts.budget) : planStable(graph, opts.budget);
}
