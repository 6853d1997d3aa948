/** Temporary project directories with real config, spec and Nix files, removed after the test. */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { tempDir, type Cleanup } from './tmp.js';

/** Files by path relative to the project; objects are written as JSON. */
export type ProjectFiles = Record<string, string | object>;

export interface Project {
  dir: string;
  /** Writes (or replaces) one file, creating its directories. */
  write(file: string, content: string | object): void;
  read(file: string): string;
}

/** A project directory holding `files`. Its package.json stops the upward config search at the project. */
export function tempProject(t: Cleanup, files: ProjectFiles = {}): Project {
  const dir = tempDir(t, 'nixdock-project-');
  const project: Project = {
    dir,
    write(file, content) {
      mkdirSync(dirname(join(dir, file)), { recursive: true });
      writeFileSync(join(dir, file), typeof content === 'string' ? content : JSON.stringify(content, null, 2));
    },
    read: (file) => readFileSync(join(dir, file), 'utf8'),
  };
  const all = { 'package.json': { name: 'fixture', private: true, type: 'module' }, ...files };
  for (const [file, content] of Object.entries(all)) project.write(file, content);
  return project;
}
