// Where model files come from. The engine never touches `fs` or `fetch` directly: Node passes a
// directory-backed source, the browser a URL-backed one, so the same loaders run in both.

export interface FileSource {
  /** Reads a whole file; `path` is relative to the source's root, '/'-separated. */
  read(path: string): Promise<Uint8Array>;
  /** True when the file exists (a cheap check used to find optional files such as tokenizers). */
  exists(path: string): Promise<boolean>;
  /** How to name `path` in error messages (an absolute path or URL). */
  describe(path: string): string;
}
