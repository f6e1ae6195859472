// Downloaded models kept in the browser's Cache Storage, so the next visit starts without the
// network. Cache Storage rather than the Origin Private File System because: it is there in pages
// and workers of every browser with WebGPU; an entry is a whole Response keyed by the file's own
// URL, and `put` stores all of it or nothing, so a file is complete or absent, never half-written;
// and its bodies are Blobs the browser keeps on disk. Resuming needs the bytes of an unfinished
// file, which are kept as numbered pieces in a cache of their own until the file is committed.
//
// Three caches: `lab-model-files` (complete files, keyed by the URL they came from), `lab-partial-
// downloads` (pieces) and `lab-models` (one manifest per model: which files make it up, written
// only after every one of them was stored complete).
import { ModelFormatError } from '../errors.ts';
import type { FileSource } from '../model/files.ts';
import type { CheckedFile, DownloadStore } from './download.ts';

/** The part of the Cache interface this module uses (the browser's Cache has it; tests pass a fake). */
export interface CacheLike {
  match(url: string): Promise<Response | undefined>;
  put(url: string, response: Response): Promise<void>;
  delete(url: string): Promise<boolean>;
  keys(): Promise<ReadonlyArray<{ url: string }>>;
}

/** The part of CacheStorage (`caches`) this module uses. */
export interface CachesLike {
  open(name: string): Promise<CacheLike>;
}

export const fileCacheName = 'lab-model-files';
const partialCacheName = 'lab-partial-downloads';
const manifestCacheName = 'lab-models';

/** A model stored complete: what the engine needs to load it from the cache. */
export interface StoredModel {
  /** Stable id (the lab's model id for it). */
  id: string;
  label: string;
  /** Every file's URL is `new URL(path, baseUrl)`. */
  baseUrl: string;
  /** What the engine loads, relative to baseUrl: a .bin, a .gguf, or '' for a Hugging Face folder. */
  entry: string;
  /** A tokenizer file relative to baseUrl, when the model file carries none. */
  tokenizer?: string;
  files: Array<{ path: string; size: number; sha256: string | null }>;
  /** ISO time it was stored. */
  storedAt: string;
}

/** Where the engine finds a stored model's files (what the worker needs to build cacheSource). */
export interface CacheLocation {
  cacheName: string;
  baseUrl: string;
}

const manifestKey = (id: string) => `https://lab-models.invalid/${encodeURIComponent(id)}`;
const pieceKey = (url: string, index: number) => `https://lab-partial.invalid/${encodeURIComponent(url)}/${index}`;

export function storedSize(model: StoredModel): number {
  return model.files.reduce((sum, file) => sum + file.size, 0);
}

export class ModelCache implements DownloadStore {
  constructor(readonly caches: CachesLike) {}

  // ---- DownloadStore: complete files and pieces of unfinished ones

  async completeSize(url: string): Promise<number | null> {
    const response = await (await this.caches.open(fileCacheName)).match(url);
    return response ? (await response.blob()).size : null;
  }

  async partial(url: string): Promise<Blob[]> {
    const cache = await this.caches.open(partialCacheName);
    const pieces: Blob[] = [];
    for (let index = 0; ; index++) {
      const response = await cache.match(pieceKey(url, index));
      if (!response) return pieces;
      pieces.push(await response.blob());
    }
  }

  async appendPartial(url: string, index: number, bytes: Uint8Array<ArrayBuffer>): Promise<void> {
    await (await this.caches.open(partialCacheName)).put(pieceKey(url, index), new Response(bytes));
  }

  async commit(url: string, pieces: Blob[], checked: CheckedFile): Promise<void> {
    const headers: Record<string, string> = { 'Content-Type': 'application/octet-stream', 'Content-Length': String(checked.size) };
    if (checked.sha256) headers['X-Lab-Sha256'] = checked.sha256;
    await (await this.caches.open(fileCacheName)).put(url, new Response(new Blob(pieces), { headers }));
    await this.dropPartial(url);
  }

  async dropPartial(url: string): Promise<void> {
    const cache = await this.caches.open(partialCacheName);
    for (let index = 0; await cache.delete(pieceKey(url, index)); index++);
  }

  /** Bytes kept from unfinished downloads (they resume from there). */
  async partialBytes(): Promise<number> {
    const cache = await this.caches.open(partialCacheName);
    let bytes = 0;
    for (const request of await cache.keys()) bytes += (await (await cache.match(request.url))?.blob())?.size ?? 0;
    return bytes;
  }

  async dropAllPartial(): Promise<void> {
    const cache = await this.caches.open(partialCacheName);
    for (const request of await cache.keys()) await cache.delete(request.url);
  }

  // ---- models

  async saveModel(model: StoredModel): Promise<void> {
    const body = JSON.stringify(model);
    await (await this.caches.open(manifestCacheName)).put(manifestKey(model.id), new Response(body, { headers: { 'Content-Type': 'application/json' } }));
  }

  /** The stored model with this id, when every one of its files is still there. */
  async model(id: string): Promise<StoredModel | null> {
    const response = await (await this.caches.open(manifestCacheName)).match(manifestKey(id));
    if (!response) return null;
    const model = (await response.json()) as StoredModel;
    const files = await this.caches.open(fileCacheName);
    for (const file of model.files) if (!(await files.match(new URL(file.path, model.baseUrl).href))) return null;
    return model;
  }

  /** Every stored model whose files are all there, oldest first. */
  async models(): Promise<StoredModel[]> {
    const manifests = await this.caches.open(manifestCacheName);
    const ids = await Promise.all((await manifests.keys()).map(async (request) => ((await (await manifests.match(request.url))?.json()) as StoredModel | undefined)?.id));
    const models = await Promise.all(ids.filter((id): id is string => id !== undefined).map((id) => this.model(id)));
    return models.filter((m): m is StoredModel => m !== null).sort((a, b) => a.storedAt.localeCompare(b.storedAt));
  }

  /** Removes a model and those of its files no other stored model uses. */
  async deleteModel(id: string): Promise<void> {
    const model = await this.model(id);
    const manifests = await this.caches.open(manifestCacheName);
    await manifests.delete(manifestKey(id));
    if (!model) return;
    const stillUsed = new Set((await this.models()).flatMap((m) => m.files.map((f) => new URL(f.path, m.baseUrl).href)));
    const files = await this.caches.open(fileCacheName);
    for (const file of model.files) {
      const url = new URL(file.path, model.baseUrl).href;
      if (!stillUsed.has(url)) await files.delete(url);
    }
  }
}

/** The engine's FileSource over a stored model's files: `path` is read from the cache at `new URL(path, baseUrl)`. */
export function cacheSource(caches: CachesLike, location: CacheLocation): FileSource {
  const url = (path: string) => new URL(path, location.baseUrl).href;
  const match = async (path: string) => (await caches.open(location.cacheName)).match(url(path));
  return {
    async read(path) {
      const response = await match(path);
      if (!response) throw new ModelFormatError(`${url(path)} (cached)`, 'is not in the browser cache: download the model again');
      return new Uint8Array(await response.arrayBuffer());
    },
    async exists(path) {
      return (await match(path)) !== undefined;
    },
    describe: (path) => `${url(path)} (cached)`,
  };
}
