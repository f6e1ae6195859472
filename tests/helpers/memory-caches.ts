// Cache Storage for Node tests: the part of `caches` the model cache uses (src/engine/hub/cache-
// store.ts), over Maps. Bodies are kept as Blobs and handed out as fresh Responses, as a browser does.
import type { CacheLike, CachesLike } from '../../src/engine/hub/cache-store.ts';

class MemoryCache implements CacheLike {
  readonly entries = new Map<string, { blob: Blob; headers: Headers }>();

  async match(url: string): Promise<Response | undefined> {
    const entry = this.entries.get(url);
    return entry && new Response(entry.blob, { headers: entry.headers });
  }

  async put(url: string, response: Response): Promise<void> {
    this.entries.set(url, { blob: await response.blob(), headers: new Headers(response.headers) });
  }

  async delete(url: string): Promise<boolean> {
    return this.entries.delete(url);
  }

  async keys(): Promise<ReadonlyArray<{ url: string }>> {
    return [...this.entries.keys()].map((url) => ({ url }));
  }
}

export class MemoryCaches implements CachesLike {
  readonly caches = new Map<string, MemoryCache>();

  async open(name: string): Promise<MemoryCache> {
    let cache = this.caches.get(name);
    if (!cache) this.caches.set(name, (cache = new MemoryCache()));
    return cache;
  }

  /** Every URL stored under `name`. */
  urls(name: string): string[] {
    return [...(this.caches.get(name)?.entries.keys() ?? [])];
  }
}
