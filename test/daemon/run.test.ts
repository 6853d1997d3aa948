/**
 * Run on save: `run: { engine: 'podman' }` on an image makes the real `nixdock watch` load each
 * build into a private podman store and (re)start a container from it, whose output reaches
 * WebSocket clients and the terminal; a rebuild replaces the container; watch's exit stops it.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { ServerMessage } from '../../src/daemon/protocol.js';
import { drv, BUSYBOX } from '../helpers/nix.js';
import { chromium } from 'playwright-core';
import { hasTool, missingTools } from '../helpers/tools.js';
import { podman, podmanStoreFlags } from '../helpers/podman.js';
import { appProject, connected, startDaemon, type Client } from './helpers.js';

const skip = missingTools([['nix-build', 'nix-bin'], ['podman', 'podman'], ['runc', 'runc']]);

type Msg<T extends ServerMessage['type']> = Extract<ServerMessage, { type: T }>;

/** A service: prints its message, then runs until SIGTERM (busybox sh as PID 1 honours a trap). */
function serviceApp(message: string): string {
  const data = drv('service-data', `export PATH=/usr/bin:/bin; mkdir -p $out/share; printf '%s\\n' ${JSON.stringify(message)} > $out/share/message`);
  return drv(
    'service',
    [
      'export PATH=/usr/bin:/bin; mkdir -p $out/bin',
      "printf '#!${busybox}/bin/sh\\ntrap \"exit 0\" TERM\\n${busybox}/bin/cat ${data}/share/message\\n${busybox}/bin/busybox sleep 600 &\\nwait\\n' > $out/bin/serve",
      'chmod 555 $out/bin/serve',
    ].join('\n'),
    { busybox: BUSYBOX, data },
  );
}

function containerLog(client: Client, line: string): Promise<Msg<'container-log'>> {
  return client.waitFor((m): m is Msg<'container-log'> => m.type === 'container-log' && m.line === line, `the container's line ${JSON.stringify(line)}`);
}

test('watch runs the image in podman, replaces the container on a rebuild and streams its output', { skip }, async (t) => {
  // node:test runs t.after hooks in the order they were added: clean-ups go on a stack, so the
  // daemon (and its container) stop before the podman store is deleted.
  const cleanups: Array<() => unknown> = [];
  t.after(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });
  const store = mkdtempSync(join(tmpdir(), 'nixdock-run-podman-'));
  cleanups.push(() => rmSync(store, { recursive: true, force: true }));
  const project = appProject({ after: (cleanup) => void cleanups.push(cleanup) });
  project.write('app.nix', serviceApp('v1'));
  project.write('images/app.json', JSON.stringify({
    name: 'app',
    contents: [{ nix: '../app.nix' }],
    config: { Cmd: ['/bin/serve'] },
    run: { engine: 'podman', args: ['--network=none', '--ulimit', 'nofile=1024:1024', '--ulimit', 'nproc=1024:1024'] },
  }));
  const env = { NIXDOCK_PODMAN_ARGS: [...podmanStoreFlags(store), '--runtime', '/usr/sbin/runc'].join(' ') };
  const daemon = await startDaemon(project, [], env);
  cleanups.push(() => daemon.stop());
  const client = await connected(daemon.info);
  cleanups.push(() => client.ws.close());

  const first = await containerLog(client, 'v1');
  const started = client.messages.find((m): m is Msg<'container'> => m.type === 'container' && m.container.state === 'started')!;
  assert.equal(started.container.name, first.name);
  assert.match(started.container.ref, /^localhost\/app:[a-z0-9]+$/, 'the name podman load gives the image');

  project.write('app.nix', serviceApp('v2'));
  const second = await containerLog(client, 'v2');
  const states = client.messages.filter((m): m is Msg<'container'> => m.type === 'container').map((m) => [m.container.state, m.container.ref]);
  const newRef = states.at(-1)![1];
  assert.notEqual(newRef, started.container.ref, 'the rebuild has a new tag');
  assert.deepEqual(states, [['started', started.container.ref], ['stopped', started.container.ref], ['started', newRef]]);
  assert.equal(second.name, first.name, 'the same container name, replaced');
  // One container runs, from the new build; the old one was removed (--rm).
  assert.deepEqual(podman(store, ['ps', '-a', '--format', '{{.Names}} {{.Image}}']).trim().split('\n'), [`${first.name} ${newRef}`]);
  assert.equal(podman(store, ['ps', '--filter', 'status=running', '--format', '{{.Names}}']).trim(), first.name);
  // A client joining now gets the container and its output in the snapshot.
  const late = await connected(daemon.info);
  cleanups.push(() => late.ws.close());
  const snap = late.messages.find((m): m is Msg<'snapshot'> => m.type === 'snapshot')!;
  const container = snap.images[0]!.container!;
  assert.equal(container.state, 'started');
  assert.equal(container.ref, newRef);
  assert.deepEqual(container.log.map((l) => [l.stream, l.line]), [['stdout', 'v2']]);

  if (hasTool('chromium')) await dashboardShowsContainer(daemon.info.url, daemon.info.token, newRef);

  assert.equal(await daemon.stop(), 0);
  assert.match(daemon.stdout(), /app │ v1\n[^]*app: container \S+ stopped\n[^]*app │ v2\n/);
  assert.equal(podman(store, ['ps', '-a', '--format', '{{.Names}}']).trim(), '', 'watch stops and removes its container on exit');
});

/** The dashboard (headless Chromium) shows the container, its image and its output. */
async function dashboardShowsContainer(url: string, token: string, ref: string): Promise<void> {
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run'] });
  try {
    const page = await browser.newPage();
    await page.goto(`${url}#token=${token}`);
    const panel = page.locator('article.image[data-image="app"] .container-log');
    await panel.locator('pre', { hasText: 'v2' }).waitFor({ timeout: 30_000 });
    assert.match((await panel.locator('.container-state').textContent())!, new RegExp(`started · ${ref}$`));
  } finally {
    await browser.close();
  }
}
