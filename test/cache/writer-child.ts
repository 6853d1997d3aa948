/**
 * A separate process writing to a shared index, for the concurrency and kill tests.
 *   node --import tsx writer-child.ts <cacheDir> <name> <rounds|forever> <pathsPerRound>
 * Each round is a series of transactions, as a build makes them: a batch of store paths, a build
 * started, one per layer, and the build finished with LAYERS_PER_BUILD layer rows.
 * After every round it prints `round <n>` on stdout.
 */
import { BuildCache } from '../../src/cache/cache.js';
import { LAYERS_PER_BUILD, storePaths } from './helpers.js';
import { sha256 } from '../helpers/bytes.js';

const [cacheDir, name, roundsArg, perRoundArg] = process.argv.slice(2) as [string, string, string, string];
const rounds = roundsArg === 'forever' ? Infinity : Number(roundsArg);
const perRound = Number(perRoundArg);

const index = BuildCache.open(cacheDir);
for (let round = 0; round < rounds; round++) {
  index.recordStorePaths(storePaths(`${name}-${round}`, perRound));
  const id = index.startBuild(name, `round ${round}`);
  const layers = Array.from({ length: LAYERS_PER_BUILD }, (_, i) => ({
    index: i,
    key: `${name}-${round}-${i}`,
    diffId: sha256(`${name}-${round}-${i}`),
    size: 512 * (i + 1),
    built: true,
    storePaths: [`/nix/store/${name}-${round}-${i}`],
  }));
  for (const layer of layers) index.recordLayer({ key: layer.key, diffId: layer.diffId, size: layer.size, storePaths: layer.storePaths });
  index.finishBuild(id, { status: 'succeeded', layersBuilt: LAYERS_PER_BUILD, layersReused: 0, bytesWritten: 0, layers });
  process.stdout.write(`round ${round}\n`);
}
index.close();
