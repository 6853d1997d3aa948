/**
 * Layer planning: groups a closure's store paths into at most `budget` layers.
 * `budget` is the number of store layers available (the caller has already subtracted base-image
 * and customisation layers). Plans are deterministic: the same closure gives the same plan on any
 * machine, whatever the order of the input Map.
 */
import { NixdockError } from '../errors.js';
import type { Closure, LayerGroup, LayerStrategy } from '../types.js';
import { hitSets, planCost, type PlanCost } from './cost.js';
import { closureGraph, topologicalOrder } from './graph.js';
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

export type { PlanCost } from './cost.js';

/** A plan's rebuild cost next to what the popularity split would cost for the same closure and budget. */
export interface PlanComparison {
  plan: PlanCost;
  popularity: PlanCost;
}

/**
 * Prices `groups` (the store layers of a built image; every path must be in `closure`) with the
 * cost model of cost.ts, and the popularity plan for `budget` store layers beside it.
 */
export function comparePlans(closure: Closure, groups: readonly (readonly string[])[], budget: number): PlanComparison {
  const graph = closureGraph(closure);
  const sets = hitSets(graph, topologicalOrder(graph));
  const popularity = planPopularity(graph, Math.max(1, budget)).map((group) => group.paths);
  return { plan: planCost(graph, sets, groups), popularity: planCost(graph, sets, popularity) };
}
