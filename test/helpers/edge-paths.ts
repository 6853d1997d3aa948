/**
 * Store paths full of tar edge cases (long and UTF-8 names, hard links, every kind of symlink, a
 * file big enough for the tar worker, many small files), built once per process in the real Nix store.
 */
import { drv, nixBuild } from './nix.js';

export const LONG_DIR = 'd'.repeat(120);
export const LONG_FILE = 'f'.repeat(200);
export const LONG_TARGET = `${'../'.repeat(40)}target-${'t'.repeat(20)}`;
export const UTF8_NAMES = ['héllo-wörld.txt', '日本語', '\u{1F433}', '\uFB01'];
/** Over 8 MiB, so a layer holding the edge tree is tarred by a worker thread (smaller ones are tarred inline). */
export const BIG_FILE_SIZE = 9 * 1024 * 1024 + 123;

const EDGE_TREE_SCRIPT = `
export PATH=/usr/bin:/bin
mkdir -p $out/bin $out/share/empty-dir $out/a $out/${LONG_DIR} $out/many
printf '#!/bin/sh\\necho run\\n' > $out/bin/run
chmod 755 $out/bin/run
printf 'data\\n' > $out/bin/data
ln $out/bin/data $out/bin/data-hardlink
: > $out/share/empty
printf f > $out/a/f
printf x > $out/a-b
printf x > $out/a.b
printf x > $out/B
printf long > $out/${LONG_DIR}/${LONG_FILE}
${UTF8_NAMES.map((name) => `printf u > "$out/${name}"`).join('\n')}
ln -s bin/run $out/link-rel
ln -s ${LONG_TARGET} $out/link-long
ln -s "${UTF8_NAMES[0]}" $out/link-utf8
ln -s share $out/link-dir
ln -s /nonexistent/dangling $out/link-dangling
head -c ${BIG_FILE_SIZE} /dev/urandom > $out/big
cd $out/many && head -c 1200000 /dev/urandom | split -b 3001 -a 3 - part-
`;

export interface EdgePaths {
  /** A directory tree with every edge case. */
  tree: string;
  /** A store path that is a single file. */
  file: string;
  /** A store path that is a symlink (to the tree's bin/run). */
  symlink: string;
}

let built: EdgePaths | undefined;

/** Builds (once per process) the edge-case store paths. */
export function edgePaths(): EdgePaths {
  if (built) return built;
  const tree = drv('edge-tree', EDGE_TREE_SCRIPT);
  const [treePath, file, symlink] = nixBuild(`[ ${tree} ${drv('edge-file', "export PATH=/usr/bin:/bin; printf 'single file\\n' > $out")} ${drv('edge-symlink', 'export PATH=/usr/bin:/bin; ln -s ${tree}/bin/run $out', { tree })} ]`);
  built = { tree: treePath!, file: file!, symlink: symlink! };
  return built;
}
