/** What the publish suite's tests share: a push of a project image as the CLI reports it. */
import assert from 'node:assert/strict';
import { nixdockJson, nixdockJsonAsync } from '../helpers/cli.js';

/** `nixdock push --json ARGS` of an image the config defines: planned from its spec, so it says what it tarred and what it took from the registry. */
export function plannedPush(project: string, args: string[]) {
  const result = nixdockJson(project, ['push', ...args]);
  assert.ok('layersTarred' in result, 'the push was planned from the spec');
  return result;
}

/** plannedPush without blocking the test's event loop: for pushes through a test proxy, which runs in it. */
export async function plannedPushAsync(project: string, args: string[]) {
  const result = await nixdockJsonAsync(project, ['push', ...args]);
  assert.ok('layersTarred' in result, 'the push was planned from the spec');
  return result;
}
