/**
 * Real Nix store fixtures: raw `derivation`s with /bin/sh as builder (no nixpkgs), built with
 * the real nix CLI. The binary cache is unreachable here, so substituters are switched off.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * Single-user Nix as Debian's nix-bin installs it: no nixbld group (Nix run as root asks for one
 * unless build-users-group is empty) and no sandbox (the raw derivations use the host's /bin/sh).
 */
export const NIX_ENV = {
  ...process.env,
  NIX_CONFIG: 'substituters =\nbuild-users-group =\nsandbox = false\nexperimental-features = nix-command flakes',
};

/** Builds a Nix expression (file contents) and returns its output paths. */
export function nixBuild(expression: string): string[] {
  const dir = mkdtempSync(join(tmpdir(), 'nixdock-nix-'));
  const file = join(dir, 'default.nix');
  writeFileSync(file, expression);
  try {
    const out = execFileSync('nix-build', [file, '--no-out-link'], { env: NIX_ENV, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    return out.trim().split('\n').filter(Boolean);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Nix source for a derivation; `script` runs in /bin/sh with $out set, and may use `deps`
 * (an attrset of other derivation expressions, interpolated as `${name}` inside the script).
 */
export function drv(name: string, script: string, deps: Record<string, string> = {}): string {
  const depBindings = Object.entries(deps).map(([k, v]) => `${k} = ${v};`).join(' ');
  return `(let ${depBindings} in derivation { name = ${JSON.stringify(name)}; system = builtins.currentSystem; builder = "/bin/sh"; args = [ "-c" ${nixString(script)} ]; })`;
}

/** A Nix indented string, so `${dep}` interpolations inside the script work. */
function nixString(script: string): string {
  return `''\n${script.replace(/''/g, "'''")}\n''`;
}

/** Static busybox (Debian busybox-static) copied into the store, with sh/echo/cat links. */
export const BUSYBOX = drv(
  'busybox-static',
  'export PATH=/usr/bin:/bin; mkdir -p $out/bin; cp /bin/busybox $out/bin/busybox; for a in sh echo cat ls; do ln -s busybox $out/bin/$a; done',
);

/** A small app closure: a shell script that depends on busybox and a data path. */
export function helloApp(message = 'hello from nixdock'): string {
  const data = drv('hello-data', `export PATH=/usr/bin:/bin; mkdir -p $out/share; printf '%s\\n' ${JSON.stringify(message)} > $out/share/message`);
  return drv(
    'hello-app',
    'export PATH=/usr/bin:/bin; mkdir -p $out/bin; printf \'#!${busybox}/bin/sh\\nexec ${busybox}/bin/cat ${data}/share/message\\n\' > $out/bin/hello; chmod 555 $out/bin/hello',
    { busybox: BUSYBOX, data },
  );
}

export interface HelloClosure {
  app: string;
  /** The closure, dependencies first (busybox, data, app). */
  paths: string[];
  message: string;
}

/** hello-app built, with its closure as nix-store lists it. */
export function helloClosure(message = 'hello from nixdock'): HelloClosure {
  const [app] = nixBuild(helloApp(message));
  const closure = execFileSync('nix-store', ['--query', '--requisites', app!], { env: NIX_ENV, encoding: 'utf8' }).trim().split('\n');
  return { app: app!, paths: closure, message };
}
