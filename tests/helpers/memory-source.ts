// An in-memory FileSource for tests: files are bytes or text keyed by path.

import { ModelFormatError } from '../../src/engine/errors.ts';
import type { FileSource } from '../../src/engine/model/files.ts';

export type MemoryFiles = Record<string, Uint8Array | string>;

/** `describe(path)` is `prefix + path`, so error messages name the file as a test expects. */
export function memorySource(files: MemoryFiles, prefix = ''): FileSource {
  const describe = (path: string) => prefix + path;
  return {
    async read(path) {
      const file = files[path];
      if (file === undefined) throw new ModelFormatError(describe(path), 'not found');
      return typeof file === 'string' ? new TextEncoder().encode(file) : file;
    },
    async exists(path) {
      return path in files;
    },
    describe,
  };
}
