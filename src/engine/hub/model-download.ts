// Downloads every file of a plan into the model cache, one file after another, and records the
// model as stored only once all of them are complete and checked.
import { type CacheLocation, fileCacheName, type ModelCache, type StoredModel } from './cache-store.ts';
import { downloadFile, type FileProgress } from './download.ts';
import type { ModelPlan } from './plan.ts';

export interface ModelDownloadOptions {
  signal?: AbortSignal;
  /** Progress of file `path` (every file of the plan reports, in order). */
  onProgress?: (path: string, progress: FileProgress) => void;
  fetch?: typeof fetch;
  /** Passed to downloadFile (tests shorten it). */
  retryDelayMs?: (retry: number) => number;
}

export async function downloadModel(plan: ModelPlan, cache: ModelCache, options: ModelDownloadOptions = {}): Promise<StoredModel> {
  const files: StoredModel['files'] = [];
  for (const file of plan.files) {
    const checked = await downloadFile({
      url: new URL(file.path, plan.baseUrl).href,
      store: cache,
      size: file.size,
      sha256: file.sha256,
      signal: options.signal,
      fetch: options.fetch,
      retryDelayMs: options.retryDelayMs,
      onProgress: (progress) => options.onProgress?.(file.path, progress),
    });
    files.push({ path: file.path, size: checked.size, sha256: checked.sha256 });
  }
  const stored: StoredModel = { id: plan.id, label: plan.label, baseUrl: plan.baseUrl, entry: plan.entry, files, storedAt: new Date().toISOString() };
  if (plan.tokenizer) stored.tokenizer = plan.tokenizer;
  await cache.saveModel(stored);
  return stored;
}

/** Where the engine reads a stored model from. */
export function cacheLocation(model: StoredModel): CacheLocation {
  return { cacheName: fileCacheName, baseUrl: model.baseUrl };
}
