// Which files make up a model before any of them is downloaded. A Hugging Face folder is
// config.json (read now: the preflight needs it), the weights (model.safetensors, or the shards
// that model.safetensors.index.json names) and the tokenizer files it has; a .gguf is one file; a
// llama2.c .bin also needs a llama2.c tokenizer from the same folder (tok{vocab}.bin or
// tokenizer.bin, the names the tokenizer loader looks for).
import { parseHfConfig, parseShardIndex, shardIndexName } from '../model/huggingface.ts';
import type { ModelConfig } from '../model/types.ts';
import { urlSource } from '../model/url-source.ts';
import { type ModelReference, referenceBaseUrl, referenceLabel } from './reference.ts';

export interface PlannedFile {
  /** Relative to the plan's baseUrl (or an absolute URL for a file kept elsewhere). */
  path: string;
  /** Bytes, when known before downloading (the catalog's figure; the server's otherwise). */
  size?: number;
  sha256?: string;
}

/** A model to download: enough to fetch, check, store and then load it. */
export interface ModelPlan {
  /** The lab's model id for it once stored ("hub:owner/name", "url:…"). */
  id: string;
  label: string;
  /** Folder URL (ending in '/') the paths are relative to. */
  baseUrl: string;
  /** What the engine loads, relative to baseUrl ('' for a Hugging Face folder). */
  entry: string;
  tokenizer?: string;
  files: PlannedFile[];
  /** The model's shapes when known before downloading (config.json, the catalog): the preflight's input. */
  config: ModelConfig | null;
}

const hfTokenizerFiles = ['tokenizer.json', 'tokenizer_config.json'];

/**
 * Plans the download of what `reference` names, asking the server only for small things
 * (config.json, the shard index, whether optional files exist, a .bin's 28-byte header).
 */
export async function planDownload(reference: ModelReference, hubUrl: string): Promise<ModelPlan> {
  const baseUrl = referenceBaseUrl(reference, hubUrl);
  const label = referenceLabel(reference);
  const id = reference.kind === 'url' ? `url:${reference.url}` : `hub:${label}`;
  const files = urlSource(baseUrl);
  const file = reference.kind === 'hub-file' ? reference.path.slice(reference.path.lastIndexOf('/') + 1) : reference.kind === 'url' ? decodeURIComponent(new URL(reference.url).pathname.split('/').pop() ?? '') : '';

  if (file === '') {
    const config = parseHfConfig(new TextDecoder().decode(await files.read('config.json')), files.describe('config.json'));
    const weights = (await files.exists(shardIndexName))
      ? [shardIndexName, ...parseShardIndex(new TextDecoder().decode(await files.read(shardIndexName)), files.describe(shardIndexName)).keys()]
      : ['model.safetensors'];
    const tokenizers = [];
    for (const name of hfTokenizerFiles) if (await files.exists(name)) tokenizers.push(name);
    return { id, label, baseUrl, entry: '', files: ['config.json', ...weights, ...tokenizers].map((path) => ({ path })), config };
  }
  if (file.toLowerCase().endsWith('.gguf')) return { id, label, baseUrl, entry: file, files: [{ path: file }], config: null };
  if (!file.toLowerCase().endsWith('.bin')) throw new Error(`${label}: expected a .gguf or .bin file, or a folder with config.json`);

  const vocabSize = await llama2cVocabSize(new URL(file, baseUrl).href);
  for (const tokenizer of [`tok${vocabSize}.bin`, 'tokenizer.bin']) {
    if (await files.exists(tokenizer)) return { id, label, baseUrl, entry: file, tokenizer, files: [{ path: file }, { path: tokenizer }], config: null };
  }
  throw new Error(`${label}: no llama2.c tokenizer next to it (tok${vocabSize}.bin or tokenizer.bin); drop the model and its tokenizer onto the page instead`);
}

/** The vocabulary size in a llama2.c header (the 6th int32, negative when the classifier is not shared). */
async function llama2cVocabSize(url: string): Promise<number> {
  const response = await fetch(url, { headers: { Range: 'bytes=0-27' } });
  if (!response.ok) {
    await response.body?.cancel();
    throw new Error(`${url}: could not be fetched (HTTP ${response.status})`);
  }
  // A server that ignores Range sends the whole file: read the first 28 bytes and stop.
  const reader = response.body!.getReader();
  const header = new Uint8Array(28);
  let filled = 0;
  while (filled < header.length) {
    const { done, value } = await reader.read();
    if (done) break;
    header.set(value.subarray(0, header.length - filled), filled);
    filled += Math.min(value.length, header.length - filled);
  }
  await reader.cancel();
  if (filled < header.length) throw new Error(`${url}: ${filled} bytes, shorter than a llama2.c header`);
  return Math.abs(new DataView(header.buffer).getInt32(20, true));
}
