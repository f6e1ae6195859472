// FileSource over a local directory (Node only; the engine itself never imports `fs`).

import { readFile, stat } from 'node:fs/promises';
import { dirname, basename, resolve } from 'node:path';
import { ModelFormatError } from '../engine/errors.ts';
import type { FileSource } from '../engine/model/files.ts';

/** Files under `root`; paths are '/'-separated and relative to it. */
export function directorySource(root: string): FileSource {
  const absolute = (path: string) => resolve(root, path);
  return {
    async read(path) {
      try {
        const buffer = await readFile(absolute(path));
        // A plain Uint8Array view: Buffer's slice() shares memory where Uint8Array's copies.
        return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
      } catch (error) {
        throw new ModelFormatError(absolute(path), readProblem(error));
      }
    },
    async exists(path) {
      try {
        return (await stat(absolute(path))).isFile();
      } catch {
        return false;
      }
    },
    describe: absolute,
  };
}

function readProblem(error: unknown): string {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return 'not found';
  if (code === 'EISDIR') return 'is a directory, expected a file';
  return `could not be read: ${(error as Error).message}`;
}

/**
 * Where to find a model given on the command line: a `.bin`/`.gguf` file is read from its folder
 * (entry = its name); anything else is a Hugging Face folder (entry = '').
 */
export function openModelPath(path: string): { files: FileSource; entry: string } {
  if (/\.(bin|gguf)$/i.test(path)) return { files: directorySource(dirname(path)), entry: basename(path) };
  return { files: directorySource(path), entry: '' };
}
