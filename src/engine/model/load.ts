// One entry point for every model format: picks the loader from the entry's name, then checks
// that what came out matches the engine's conventions (types.ts) whatever the format.

import { ModelFormatError } from '../errors.ts';
import { elementCount } from './bytes.ts';
import type { FileSource } from './files.ts';
import { ggufModel, ggufVocabulary, parseGguf, type GgufVocabulary } from './gguf.ts';
import { loadHuggingFace } from './huggingface.ts';
import { parseLlama2c } from './llama2c.ts';
import { type ModelDescription, expectedShapes } from './types.ts';

export type ModelFormat = 'llama2c' | 'gguf' | 'huggingface';

/** `.bin` → llama2.c, `.gguf` → GGUF, anything else ('' or 'dir/sub') → a Hugging Face folder. */
export function detectFormat(entry: string): ModelFormat {
  const lower = entry.toLowerCase();
  if (lower.endsWith('.bin')) return 'llama2c';
  if (lower.endsWith('.gguf')) return 'gguf';
  return 'huggingface';
}

export interface LoadedModel {
  model: ModelDescription;
  /** The vocabulary a GGUF file carries, for its tokenizer (absent for other formats). */
  vocabulary?: GgufVocabulary;
}

/** Loads and checks the model at `entry` (a file, or a folder holding config.json). */
export async function loadModel(files: FileSource, entry: string): Promise<LoadedModel> {
  const loaded = await loadByFormat(files, entry);
  shareIdenticalClassifier(loaded.model);
  checkShapes(loaded.model);
  return loaded;
}

/** loadModel without the tokenizer data. */
export async function loadModelDescription(files: FileSource, entry: string): Promise<ModelDescription> {
  return (await loadModel(files, entry)).model;
}

async function loadByFormat(files: FileSource, entry: string): Promise<LoadedModel> {
  switch (detectFormat(entry)) {
    case 'llama2c':
      return { model: parseLlama2c(await files.read(entry), files.describe(entry)) };
    case 'gguf': {
      const gguf = parseGguf(await files.read(entry), files.describe(entry));
      const model = ggufModel(gguf);
      // A GGUF without tokenizer metadata can still run with an explicitly given tokenizer.
      const vocabulary = gguf.metadata.has('tokenizer.ggml.tokens') ? ggufVocabulary(gguf) : undefined;
      return { model, vocabulary };
    }
    case 'huggingface':
      return { model: await loadHuggingFace(files, entry) };
  }
}

/**
 * Some converters (llama.cpp's llama2.c converter, for one) write a tied classifier out as a second
 * copy of the embedding. Sharing one tensor halves its GPU memory and makes every format agree.
 */
function shareIdenticalClassifier(model: ModelDescription): void {
  const embedding = model.tensors.get('tokenEmbedding');
  const classifier = model.tensors.get('classifier');
  if (!embedding || !classifier || embedding === classifier) return;
  if (embedding.sourceDtype !== classifier.sourceDtype || !sameBits(embedding.data, classifier.data)) return;
  model.tensors.set('classifier', embedding);
  model.config.tiedEmbeddings = true;
}

function sameBits(a: Float32Array, b: Float32Array): boolean {
  if (a.length !== b.length) return false;
  const [x, y] = [new Uint32Array(a.buffer, a.byteOffset, a.length), new Uint32Array(b.buffer, b.byteOffset, b.length)];
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}

/** Throws a ModelFormatError naming the model's file unless the config is sound and every tensor has its expected shape. */
export function checkShapes(model: ModelDescription): void {
  const fail = (problem: string) => new ModelFormatError(model.source, problem);
  const c = model.config;
  const sizes = ['dim', 'hiddenDim', 'nLayers', 'nHeads', 'nKvHeads', 'headDim', 'vocabSize', 'maxSeqLen'] as const;
  for (const name of sizes) {
    const value = c[name];
    if (!Number.isSafeInteger(value) || value <= 0) throw fail(`config ${name} is ${value}, expected a positive integer`);
  }
  if (c.nHeads % c.nKvHeads !== 0) throw fail(`config nHeads ${c.nHeads} is not a multiple of nKvHeads ${c.nKvHeads}`);
  if (c.headDim % 2 !== 0) throw fail(`config headDim ${c.headDim} is odd; RoPE rotates pairs`);

  const expected = expectedShapes(c);
  for (const [name, shape] of expected) {
    const tensor = model.tensors.get(name);
    if (!tensor) throw fail(`tensor ${name} is missing`);
    if (tensor.shape.join() !== shape.join()) {
      throw fail(`tensor ${name} has shape [${tensor.shape.join(', ')}] but the config needs [${shape.join(', ')}]`);
    }
    if (tensor.data.length !== elementCount(shape)) {
      throw fail(`tensor ${name} holds ${tensor.data.length} values for shape [${shape.join(', ')}]`);
    }
  }
  const extra = [...model.tensors.keys()].filter((name) => !expected.has(name));
  if (extra.length > 0) throw fail(`unexpected tensors: ${extra.join(', ')}`);

  const tied = model.tensors.get('classifier') === model.tensors.get('tokenEmbedding');
  if (tied !== c.tiedEmbeddings) {
    throw fail(`config says tiedEmbeddings ${c.tiedEmbeddings} but the classifier ${tied ? 'is' : 'is not'} the embedding tensor`);
  }
}
