/**
 * `nixdock watch --open`: hands the dashboard URL to the user's browser — $BROWSER when set (as
 * git, Python's webbrowser and many CLIs honour it), else `open` on macOS and `xdg-open` elsewhere.
 * The browser runs detached: it outlives nothing it should not, and its failure only costs a line.
 */
import { spawn } from 'node:child_process';

export function browserCommand(env: NodeJS.ProcessEnv = process.env): string {
  return env.BROWSER?.trim() || (process.platform === 'darwin' ? 'open' : 'xdg-open');
}

/** Resolves with undefined once the browser command started, or with why it could not. */
export function openInBrowser(url: string, env: NodeJS.ProcessEnv = process.env): Promise<string | undefined> {
  const command = browserCommand(env);
  return new Promise((resolve) => {
    const child = spawn(command, [url], { detached: true, stdio: 'ignore' });
    child.once('error', (err: NodeJS.ErrnoException) => resolve(`could not run \`${command}\` (${err.code ?? err.message}); set BROWSER or open the URL yourself`));
    child.once('spawn', () => {
      child.unref();
      resolve(undefined);
    });
  });
}
