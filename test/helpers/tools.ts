/**
 * Tests that need an external tool skip with a message naming the Debian package when it is
 * missing — and fail instead under NIXDOCK_REQUIRE_TOOLS=1 (set by .ci/run), so CI runs them all.
 */
import { spawnSync } from 'node:child_process';
import type { TestContext } from 'node:test';

const found = new Map<string, boolean>();

export function hasTool(command: string): boolean {
  let ok = found.get(command);
  if (ok === undefined) {
    ok = spawnSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' }).status === 0;
    found.set(command, ok);
  }
  return ok;
}

/**
 * Returns true when the tool is there. Otherwise skips the test (naming the package to install),
 * or throws when NIXDOCK_REQUIRE_TOOLS=1.
 */
export function needTool(t: TestContext, command: string, debianPackage: string): boolean {
  if (hasTool(command)) return true;
  const message = `needs \`${command}\`: install the Debian package ${debianPackage}`;
  if (process.env.NIXDOCK_REQUIRE_TOOLS === '1') throw new Error(`${message} (NIXDOCK_REQUIRE_TOOLS=1)`);
  t.skip(message);
  return false;
}

/** Skip options for `test(name, skipUnless(...), fn)` when a whole test needs a set of tools. */
export function missingTools(tools: Array<[command: string, debianPackage: string]>): string | false {
  const missing = tools.filter(([command]) => !hasTool(command));
  if (missing.length === 0) return false;
  const message = `needs ${missing.map(([c, p]) => `\`${c}\` (Debian package ${p})`).join(', ')}`;
  if (process.env.NIXDOCK_REQUIRE_TOOLS === '1') throw new Error(`${message} (NIXDOCK_REQUIRE_TOOLS=1)`);
  return message;
}
