/**
 * Child process for tar-writer.test.ts: writes the hybrid archive of the layer tar files named on
 * the command line to its own stdout, as `nixdock stream` does. Not a test file itself.
 *   archive-child.ts blocking|no-blocking-switch FILE…
 * `no-blocking-switch` hides libuv's blocking-write switch, so the non-blocking pipe path runs.
 */
import { writeDockerArchive } from '../../src/formats/docker-archive/write.js';
import { archiveLayers, childImage } from './archive-fixtures.js';

const [mode, ...files] = process.argv.slice(2);
if (mode === 'no-blocking-switch') (process.stdout as unknown as { _handle: { setBlocking?: unknown } })._handle.setBlocking = undefined;
await writeDockerArchive([childImage(archiveLayers(files, true))], process.stdout);
