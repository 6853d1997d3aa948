/**
 * Runs a user's build script (extraCommands, fakeRootCommands) the way a Nix builder would run it:
 * bash with errexit, a clean environment, a fixed working directory, the store read-only and no
 * way to write anywhere but the tree being built.
 *
 * Why bubblewrap: the tree is made of symlinks into the store, so a script run as the caller can
 * follow them and rewrite store files (as root it can, and every user of that path and every
 * layer cached from it is then wrong). bwrap gives the script a mount namespace in which the whole
 * host — the store included — is bind-mounted read-only, the tree is the one writable place (at
 * /build/root, so its host path cannot leak into the layer), /tmp is a private tmpfs and the
 * network is gone, without privileges (an unprivileged user namespace) and without a VM.
 */
import { spawn } from 'node:child_process';
import { accessSync, constants, readdirSync, readlinkSync, lstatSync } from 'node:fs';
import { delimiter, dirname, join } from 'node:path';
import { NixdockError } from '../errors.js';

/** Where the tree is inside the sandbox: dockerTools runs extraCommands in /build/<dir> too. */
export const SANDBOX_TREE = '/build/root';
/** Kept from a failing script's stderr for the error (its end is where the reason is). */
const STDERR_TAIL_BYTES = 16 * 1024;
/** Host top-level directories the sandbox replaces with its own. */
const REPLACED = new Set(['proc', 'dev', 'tmp', 'build', 'sys']);

export type ScriptField = 'extraCommands' | 'fakeRootCommands' | 'runAsRoot';

export interface SandboxScript {
  field: ScriptField;
  script: string;
  /** Host directory mounted read-write at SANDBOX_TREE and used as working directory. */
  tree: string;
  /** Logical store dir, and the host directory holding it (they differ for a `dir` store). */
  storeDir: string;
  physicalStoreDir: string;
  /** SOURCE_DATE_EPOCH, as stdenv sets it from the layer's mtime. */
  sourceDateEpoch: number;
  /**
   * Run under fakeroot, saving what it faked (owners, modes, device nodes) into this host file
   * (its directory is mounted writable): dockerTools' fakeRootCommands.
   */
  fakerootState?: string;
  /** The PATH searched for bwrap and bash; default process.env.PATH. */
  path?: string;
}

/** Runs the script to completion; a non-zero exit is a LAYER_BUILD error with its stderr. */
export async function runSandboxed(run: SandboxScript): Promise<void> {
  const path = run.path ?? process.env.PATH ?? '/usr/bin:/bin';
  const tools = { bwrap: findExecutable('bwrap', path), bash: findExecutable('bash', path), fakeroot: run.fakerootState ? findExecutable('fakeroot', path) : '' };
  const missing = (Object.keys(tools) as Array<keyof typeof tools>).find((tool) => tools[tool] === undefined);
  if (missing) throw missingTool(run.field, missing);
  const wrapper = run.fakerootState ? [tools.fakeroot!, '-s', run.fakerootState, '--'] : [];
  const args = [...bwrapArgs(run), '--', ...wrapper, tools.bash!, '--noprofile', '--norc', '-c', `set -euo pipefail\numask 022\n${run.script}`];
  const env = scriptEnv(run, path);
  // fakeroot must not try the real chown first: in the user namespace it fails with EINVAL, which fakeroot passes on.
  if (run.fakerootState) env.FAKEROOTDONTTRYCHOWN = '1';
  const status = await spawnCollecting(tools.bwrap!, args, env);
  if (status.code === 0) return;
  throw bwrapFailed(status) ? sandboxUnavailable(run.field, status.stderr) : scriptFailed(run.field, status);
}

/** bwrap's own failures (no user namespaces, no capabilities) exit 1 with "bwrap: …" before the script ran. */
export function bwrapFailed(status: ExitStatus): boolean {
  return status.code === 1 && status.stderr.startsWith('bwrap: ');
}

/** The mounts: the host read-only (symlinks such as /bin → usr/bin kept), then the sandbox's own places. */
function bwrapArgs(run: SandboxScript): string[] {
  const args = ['--unshare-all', '--die-with-parent', '--new-session'];
  for (const name of readdirSync('/').sort()) {
    if (REPLACED.has(name)) continue;
    const host = `/${name}`;
    const stats = lstatSync(host, { throwIfNoEntry: false });
    if (stats?.isSymbolicLink()) args.push('--symlink', readlinkSync(host), host);
    else if (stats?.isDirectory()) args.push('--ro-bind', host, host);
  }
  args.push('--proc', '/proc', '--dev', '/dev', '--tmpfs', '/tmp', '--tmpfs', '/build');
  args.push('--ro-bind', run.physicalStoreDir, run.storeDir);
  if (run.fakerootState) args.push('--bind', dirname(run.fakerootState), dirname(run.fakerootState));
  args.push('--bind', run.tree, SANDBOX_TREE, '--chdir', SANDBOX_TREE);
  return args;
}

/**
 * What a Nix builder's environment holds (nothing of the caller's but PATH, so the host's tools
 * are found): a script that reads $HOME or $USER gets the same answer on every machine.
 */
function scriptEnv(run: SandboxScript, path: string): NodeJS.ProcessEnv {
  return {
    PATH: path,
    HOME: '/homeless-shelter',
    NIX_STORE: run.storeDir,
    NIX_BUILD_TOP: '/build',
    NIX_BUILD_CORES: '1',
    TMPDIR: '/build', TEMPDIR: '/build', TMP: '/build', TEMP: '/build',
    PWD: SANDBOX_TREE,
    TERM: 'xterm-256color',
    TZ: 'UTC',
    SOURCE_DATE_EPOCH: String(run.sourceDateEpoch),
  };
}

/** The first executable `name` on `path` (as a shell would find it), or undefined. */
export function findExecutable(name: string, path: string): string | undefined {
  for (const dir of path.split(delimiter)) {
    if (dir === '') continue;
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      if (lstatSync(candidate).isDirectory()) continue;
      return candidate;
    } catch {
      // not in this directory
    }
  }
  return undefined;
}

export interface ExitStatus {
  code: number | null;
  signal: string | null;
  stderr: string;
}

export async function spawnCollecting(command: string, args: string[], env: NodeJS.ProcessEnv): Promise<ExitStatus> {
  const child = spawn(command, args, { env, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = Buffer.alloc(0);
  child.stderr.on('data', (chunk: Buffer) => {
    stderr = Buffer.concat([stderr, chunk]).subarray(-STDERR_TAIL_BYTES);
  });
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stderr: stderr.toString('utf8').trim() }));
  });
}

export function scriptFailed(field: ScriptField, { code, signal, stderr }: ExitStatus): NixdockError {
  const status = code !== null ? `exit status ${code}` : `killed by ${signal}`;
  return new NixdockError('LAYER_BUILD', `${field} failed (${status})${stderr ? `:\n${stderr}` : ''}`, {
    location: { field },
    found: stderr || `${status} with no error output`,
    expected: 'a script that exits 0',
    hint: field === 'runAsRoot'
      ? 'runAsRoot runs as root with `/bin/sh -e` chrooted into the image (base layers + contents; the store read-only); fix the failing command.'
      : `${field} runs as \`set -euo pipefail\` bash in the image root being built (paths are relative to it, the store is read-only, nothing outside it is writable); fix the failing command.`,
  });
}

const TOOL_PURPOSE = {
  bwrap: 'bubblewrap, to run the script with the Nix store read-only and no writes outside the image tree',
  bash: 'bash, which runs the script as a Nix builder would',
  fakeroot: 'fakeroot, which records the chown/chmod/mknod of fakeRootCommands for the layer',
};

export function missingTool(field: ScriptField, tool: keyof typeof TOOL_PURPOSE): NixdockError {
  const pkg = tool === 'bwrap' ? 'bubblewrap' : tool;
  return new NixdockError('TOOL_MISSING', `${field} needs \`${tool}\`, which is not on PATH`, {
    location: { field },
    found: `no ${tool} on PATH`,
    expected: TOOL_PURPOSE[tool],
    hint: `Install ${pkg} (Debian: apt-get install ${pkg}; Nix: nixpkgs#${pkg}); bwrap also needs unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1 where that exists).`,
  });
}

export function sandboxUnavailable(field: ScriptField, stderr: string): NixdockError {
  return new NixdockError('TOOL_MISSING', `${field} cannot make its sandbox on this machine`, {
    location: { field },
    found: stderr.trim(),
    expected: 'bubblewrap with unprivileged user namespaces (or running as root)',
    hint: 'Enable user namespaces (sysctl user.max_user_namespaces > 0; kernel.unprivileged_userns_clone=1 or kernel.apparmor_restrict_unprivileged_userns=0 where those exist), or run nixdock as root; perms needs no sandbox at all.',
  });
}
