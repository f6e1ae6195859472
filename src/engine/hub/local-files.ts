// Model files the user dropped onto the page (or picked), stored in the model cache like a
// download, so they load through the same cache FileSource and survive a reload.
import type { ModelCache, StoredModel } from './cache-store.ts';

export interface LocalFile {
  /** Path inside what was dropped ('model.gguf', or 'my-model/config.json' for a folder). */
  path: string;
  blob: Blob;
}

/**
 * What to load from the dropped files: a .gguf; a safetensors folder (config.json); or a llama2.c
 * .bin with its tokenizer (the smaller .bin, or a tokenizer.json). Throws an Error naming what is missing.
 */
export function localModelLayout(files: readonly LocalFile[]): { entry: string; tokenizer?: string } {
  const named = (pattern: RegExp) => files.filter((f) => pattern.test(f.path));
  const config = named(/(^|\/)config\.json$/i)[0];
  if (config) return { entry: config.path.slice(0, config.path.length - 'config.json'.length).replace(/\/$/, '') };
  const gguf = named(/\.gguf$/i).sort((a, b) => b.blob.size - a.blob.size)[0];
  if (gguf) return { entry: gguf.path };
  const bins = named(/\.bin$/i).sort((a, b) => b.blob.size - a.blob.size);
  if (bins.length === 0) throw new Error('drop a .gguf file, a llama2.c .bin with its tokenizer, or a folder with config.json and model.safetensors');
  const tokenizer = bins[1]?.path ?? named(/tokenizer\.json$/i)[0]?.path;
  if (!tokenizer) throw new Error(`${bins[0].path} is a llama2.c model: drop its tokenizer (tokenizer.bin or tok512.bin) together with it`);
  return { entry: bins[0].path, tokenizer };
}

/** Stores dropped files as the model `name` ("local:name" in the lab). */
export async function storeLocalModel(cache: ModelCache, name: string, files: readonly LocalFile[]): Promise<StoredModel> {
  const layout = localModelLayout(files);
  const baseUrl = `https://local.lab.invalid/${encodeURIComponent(name)}/`;
  for (const file of files) await cache.commit(new URL(file.path, baseUrl).href, [file.blob], { size: file.blob.size, sha256: null });
  const stored: StoredModel = {
    id: `local:${name}`,
    label: `${name} (your files)`,
    baseUrl,
    entry: layout.entry,
    files: files.map((f) => ({ path: f.path, size: f.blob.size, sha256: null })),
    storedAt: new Date().toISOString(),
  };
  if (layout.tokenizer) stored.tokenizer = layout.tokenizer;
  await cache.saveModel(stored);
  return stored;
}
