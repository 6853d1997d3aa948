/** `nixdock schema [--out FILE]`: the JSON Schema of spec files, for editors (`"$schema": "…"`). */
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { specJsonSchema } from '../config/schema.js';
import { writeFileAtomic } from '../util/atomic.js';

export interface SchemaCommandOptions {
  out?: string;
}

export function register(program: Command): void {
  program
    .command('schema')
    .description('Print (or write) the JSON Schema of nixdock spec files, for editor autocompletion')
    .option('-o, --out <file>', 'write the schema to this file (atomically) instead of stdout')
    .action(async (opts: SchemaCommandOptions) => {
      await runSchema(opts);
    });
}

export async function runSchema(opts: SchemaCommandOptions): Promise<void> {
  const text = `${JSON.stringify(specJsonSchema(), null, 2)}\n`;
  if (opts.out === undefined) {
    process.stdout.write(text);
    return;
  }
  const file = resolve(opts.out);
  await writeFileAtomic(file, text);
  process.stderr.write(`wrote ${file}\n`);
}
