/**
 * The dashboard in headless Chromium against the real daemon: it shows the images with their
 * layers and history, and a rebuild caused by a file edit appears without a reload.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { chromium, type Browser } from 'playwright-core';
import { missingTools } from '../helpers/tools.js';
import { helloApp } from '../helpers/nix.js';
import type { Project } from '../helpers/project.js';
import { cleanupList } from '../helpers/tmp.js';
import { appProject, settled, startDaemon, type DaemonProcess } from './helpers.js';

const skip = missingTools([['nix-build', 'nix-bin'], ['chromium', 'chromium']]);
let project: Project;
const files = cleanupList();
let daemon: DaemonProcess;
let browser: Browser | undefined;

before(async () => {
  if (skip) return;
  project = appProject(files, { message: 'dashboard v1' });
  daemon = await startDaemon(project);
  await settled(daemon.info, 'app');
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});

after(async () => {
  await browser?.close();
  await daemon?.stop();
  await files.run();
});

test('the dashboard shows the image, its layers and history, and a rebuild from a file edit live', { skip }, async () => {
  const page = await browser!.newPage({ viewport: { width: 1280, height: 1000 } });
  const problems: string[] = [];
  page.on('pageerror', (err) => problems.push(err.message));
  page.on('console', (m) => { if (m.type() === 'error') problems.push(m.text()); });

  await page.goto(`${daemon.info.url}#token=${daemon.info.token}`);
  const card = page.locator('article.image[data-image="app"]');
  await card.locator('.name', { hasText: 'app' }).waitFor();
  await page.locator('#conn', { hasText: 'live' }).waitFor();
  assert.equal(await card.locator('.state').textContent(), 'idle');
  await card.locator('.history li .badge.succeeded').first().waitFor();
  const layerRows = await card.locator('table.layers tbody tr').count();
  assert.ok(layerRows >= 2, `${layerRows} layer rows`);
  assert.ok((await card.locator('table.layers').textContent())!.includes('busybox-static'), 'store paths are listed by name');
  assert.equal(new URL(page.url()).hash, '', 'the token is taken out of the address bar');
  const historyBefore = await card.locator('.history li').count();
  await page.evaluate(() => { (globalThis as { marker?: number }).marker = 42; });

  project.write('app.nix', helloApp('dashboard v2'));
  await card.locator('.history li').nth(historyBefore).waitFor({ timeout: 60_000 });
  await card.locator('.state', { hasText: 'idle' }).waitFor();
  assert.equal(await card.locator('.history li .badge').first().textContent(), 'succeeded');
  assert.ok((await card.locator('table.layers .badge.built').count()) >= 1, 'the new build shows built layers');
  assert.ok((await card.locator('table.layers .badge.reused').count()) >= 1, 'and reused ones');
  assert.match((await page.locator('#log').textContent())!, /changed: app\.nix/);
  assert.equal(await page.evaluate(() => (globalThis as { marker?: number }).marker), 42, 'no reload happened');
  assert.ok(await page.locator('canvas.chart').first().isVisible(), 'the layer size chart is drawn');
  if (process.env.NIXDOCK_SCREENSHOT) await page.screenshot({ path: process.env.NIXDOCK_SCREENSHOT, fullPage: true });
  assert.deepEqual(problems, []);
});

test('the page is served without the token and other origins cannot read it as a frame', { skip }, async () => {
  const res = await fetch(daemon.info.url);
  const html = await res.text();
  assert.equal(res.status, 200);
  assert.ok(!html.includes(daemon.info.token));
  assert.equal(res.headers.get('x-frame-options'), 'DENY');
  assert.equal((await fetch(new URL('/vendor/chart.umd.js', daemon.info.url))).status, 200);
  assert.equal((await fetch(new URL('/daemon.json', daemon.info.url))).status, 404);
});

test('a page opened without a token says how to get one', { skip }, async () => {
  const page = await browser!.newPage();
  await page.goto(daemon.info.url);
  await page.locator('#conn', { hasText: 'no token' }).waitFor();
  assert.match((await page.locator('#empty').textContent())!, /#token=/);
});

test('an open dashboard reconnects after the daemon restarts, and a new tab needs no #token', { skip }, async () => {
  const context = await browser!.newContext();
  const page = await context.newPage();
  await page.goto(`${daemon.info.url}#token=${daemon.info.token}`);
  await page.locator('#conn', { hasText: 'live' }).waitFor();

  await daemon.stop();
  await page.locator('#conn', { hasText: 'reconnecting' }).waitFor();
  daemon = await startDaemon(project);
  assert.equal(new URL(daemon.info.url).port, new URL(page.url()).port, 'the restarted daemon listens where the tab looks');
  await page.locator('#conn', { hasText: 'live' }).waitFor({ timeout: 30_000 });
  await page.locator('article.image[data-image="app"] .name').waitFor();

  const tab = await context.newPage();
  await tab.goto(daemon.info.url);
  await tab.locator('#conn', { hasText: 'live' }).waitFor();
  await context.close();
});

test('a failing Nix build shows its log live in the log panel and its error with its lines', { skip }, async () => {
  const page = await browser!.newPage({ viewport: { width: 1280, height: 1000 } });
  await page.goto(`${daemon.info.url}#token=${daemon.info.token}`);
  await page.locator('#conn', { hasText: 'live' }).waitFor();
  // Axis ticks below 1 KiB are plain bytes (a fractional tick printed "819 undefined").
  assert.deepEqual(await page.evaluate(() => [0.8, 819.2, 1536].map((n) => (globalThis as unknown as { bytes(n: number): string }).bytes(n))), ['1 B', '819 B', '1.5 KiB']);

  project.write('app.nix', `derivation { name = "broken-app"; system = builtins.currentSystem; builder = "/bin/sh";
    args = [ "-c" "echo 'compiling part one' >&2; echo 'error: widget.c:3: expected ;' >&2; exit 3" ]; }`);
  const card = page.locator('article.image[data-image="app"]');
  await card.locator('.build-log pre', { hasText: 'compiling part one' }).waitFor({ timeout: 60_000 });
  await card.locator('.image-error', { hasText: 'NIX_FAILED' }).waitFor({ timeout: 60_000 });
  const message = await card.locator('.image-error pre.message').innerText();
  assert.match(message, /compiling part one\nerror: widget\.c:3: expected ;/, 'the error keeps its newlines');
  assert.match(await card.locator('.build-log pre').innerText(), /building '\/nix\/store\/[^']*broken-app\.drv'/);
  await page.close();
});
