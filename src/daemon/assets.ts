/**
 * Static files of the dashboard. They live in src/daemon/dashboard as plain HTML/JS/CSS (so they
 * can be edited and linted as what they are) and are read at runtime: next to this module when
 * running from src/ (tsx) or when the build copied them to dist/daemon/dashboard, else from
 * ../../src/daemon/dashboard relative to dist/daemon (a checkout built with plain `tsc`).
 * chart.js is served from its installed package.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { IncomingMessage, ServerResponse } from 'node:http';

const here = dirname(fileURLToPath(import.meta.url));

export const DASHBOARD_DIR = [join(here, 'dashboard'), join(here, '..', '..', 'src', 'daemon', 'dashboard')].find((dir) =>
  existsSync(join(dir, 'index.html')),
);

function chartJsFile(): string | undefined {
  try {
    return join(dirname(createRequire(import.meta.url).resolve('chart.js')), 'chart.umd.js');
  } catch {
    return undefined;
  }
}

const ROUTES: Record<string, { file: () => string | undefined; type: string }> = {
  '/': { file: () => DASHBOARD_DIR && join(DASHBOARD_DIR, 'index.html'), type: 'text/html; charset=utf-8' },
  '/app.js': { file: () => DASHBOARD_DIR && join(DASHBOARD_DIR, 'app.js'), type: 'text/javascript; charset=utf-8' },
  '/style.css': { file: () => DASHBOARD_DIR && join(DASHBOARD_DIR, 'style.css'), type: 'text/css; charset=utf-8' },
  '/vendor/chart.umd.js': { file: chartJsFile, type: 'text/javascript; charset=utf-8' },
};

/** Assets are small and few: read on each request, so editing the dashboard needs no restart. */
/** `host` is the request's Host header, already checked against the listening address (it goes into the CSP). */
export function serveAsset(path: string, host: string, req: IncomingMessage, res: ServerResponse): void {
  const route = ROUTES[path];
  const file = route?.file();
  if (!route || !file || !existsSync(file)) {
    res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8' }).end(route ? 'dashboard asset missing from this install\n' : 'not found\n');
    return;
  }
  const body = readFileSync(file);
  res.writeHead(200, {
    'Content-Type': route.type,
    'Content-Length': body.length,
    'Cache-Control': 'no-store',
    'X-Content-Type-Options': 'nosniff',
    'X-Frame-Options': 'DENY',
    'Referrer-Policy': 'no-referrer',
    'Content-Security-Policy': `default-src 'self'; connect-src 'self' ws://${host}; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'`,
  });
  res.end(req.method === 'HEAD' ? undefined : body);
}
