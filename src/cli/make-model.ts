// npm run -s make-model -- --like smollm2-135m|stories15m|qwen2.5-0.5b|llama-3.2-1b --out DIR [--seed S]
//                          [--format hf|gguf|bin] [--dtype f32|f16|bf16] [--layers N] [--shards N]
// Writes a model with deterministic synthetic weights at a real model's shapes, for benchmarks at
// real sizes where no trained weights are available. Weights and biases are N(0, 0.02), norm weights 1, so
// activations stay finite; the text they generate is noise. Only DIR is written to. Files stream
// to disk one tensor at a time, so even the 0.5B shapes never sit in memory twice.
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { createWriteStream } from 'node:fs';
import { join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { elementCount } from '../engine/model/bytes.ts';
import { parseHfConfig, shardIndexName } from '../engine/model/huggingface.ts';
import { expectedShapes, type ModelConfig } from '../engine/model/types.ts';
import { type FileDtype, type WeightSource, ggufModelChunks, huggingFaceFolder, huggingFaceShardedFolder, llama2cChunks, llama2cTokenizer } from '../engine/model/writers.ts';
import { pcg } from '../engine/reference/rng.ts';
import { numberOption, parseOptions, UsageError } from './args.ts';

const usage = `usage: npm run -s make-model -- --like smollm2-135m|stories15m|qwen2.5-0.5b|llama-3.2-1b --out DIR [--seed S]
                                 [--format hf|gguf|bin] [--dtype f32|f16|bf16] [--layers N] [--shards N]
  --shards N  hf only: N safetensors files and model.safetensors.index.json, as large checkpoints come`;

export const likes = ['smollm2-135m', 'stories15m', 'qwen2.5-0.5b', 'llama-3.2-1b'] as const;
export type Like = (typeof likes)[number];
export type ModelFileFormat = 'hf' | 'gguf' | 'bin';

/** $LAB_MODELS_DIR, else ../shared/models, from the current directory (npm runs scripts from the repo root). */
export function labModelsDir(): string {
  return resolve(process.env.LAB_MODELS_DIR || '../shared/models');
}

const smollm2Dir = () => join(labModelsDir(), 'smollm2-135m-tokenizer');

interface Preset {
  config(): Promise<ModelConfig>;
  /** The format of the real checkpoints people download. */
  format: ModelFileFormat;
}

const presets: Record<Like, Preset> = {
  // The real config.json, so the shapes cannot drift from SmolLM2-135M's.
  'smollm2-135m': {
    format: 'hf',
    async config() {
      const path = join(smollm2Dir(), 'config.json');
      return parseHfConfig(await readFile(path, 'utf8'), path);
    },
  },
  // karpathy/tinyllamas stories15M.bin's header.
  'stories15m': {
    format: 'bin',
    config: async () => ({
      architecture: 'llama', dim: 288, hiddenDim: 768, nLayers: 6, nHeads: 6, nKvHeads: 6, headDim: 48, vocabSize: 32000,
      maxSeqLen: 256, ropeTheta: 10000, rmsEps: 1e-5, tiedEmbeddings: true, bosTokenId: 1, eosTokenId: 2,
    }),
  },
  // Qwen/Qwen2.5-0.5B-Instruct's config.json: a Qwen2ForCausalLM, q/k/v biases included (only as
  // a Hugging Face folder: the llama2.c and GGUF writers have no place for them).
  'qwen2.5-0.5b': {
    format: 'hf',
    config: async () => ({
      architecture: 'llama', dim: 896, hiddenDim: 4864, nLayers: 24, nHeads: 14, nKvHeads: 2, headDim: 64, vocabSize: 151936,
      maxSeqLen: 32768, ropeTheta: 1000000, rmsEps: 1e-6, tiedEmbeddings: true, bosTokenId: 151643, eosTokenId: 151645, attentionBias: true,
    }),
  },
  // meta-llama/Llama-3.2-1B-Instruct's config.json (Llama 3 RoPE scaling; its classifier is tied).
  'llama-3.2-1b': {
    format: 'hf',
    config: async () => ({
      architecture: 'llama', dim: 2048, hiddenDim: 8192, nLayers: 16, nHeads: 32, nKvHeads: 8, headDim: 64, vocabSize: 128256,
      maxSeqLen: 131072, ropeTheta: 500000, rmsEps: 1e-5, tiedEmbeddings: true, bosTokenId: 128000, eosTokenId: 128001,
      ropeScaling: { kind: 'llama3', factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 },
    }),
  },
};

// ---------------------------------------------------------------------------------------------
// Synthetic weights

/** FNV-1a of a tensor name: each tensor's stream depends on its name, not on the order tensors are made in. */
function nameHash(name: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

/**
 * N(0, std) matrices and all-ones norm weights, generated when a writer asks for a tensor.
 * Counter-based (PCG hash of seed, name and index), so the same seed gives the same model however
 * it is written, and a tied classifier is the embedding.
 */
export function syntheticWeights(config: ModelConfig, seed: number, std = 0.02): WeightSource {
  const shapes = expectedShapes(config);
  return {
    config,
    tensor(name) {
      const canonical = name === 'classifier' && config.tiedEmbeddings ? 'tokenEmbedding' : name;
      const shape = shapes.get(canonical);
      if (!shape) throw new Error(`a ${config.nLayers}-layer model has no tensor ${name}`);
      const data = new Float32Array(elementCount(shape));
      // Norm weights are 1; Qwen2's q/k/v biases are random like the matrices.
      if (shape.length === 1 && !/\.b[qkv]$/.test(canonical)) return data.fill(1);
      const key = pcg((seed ^ nameHash(canonical)) >>> 0);
      // Box-Muller: two uniforms (24 bits each, u1 in (0, 1]) give two normals.
      for (let i = 0; i < data.length; i += 2) {
        const u1 = 1 - (pcg((key ^ pcg(i)) >>> 0) >>> 8) / 16777216;
        const u2 = (pcg((key ^ pcg(i + 1)) >>> 0) >>> 8) / 16777216;
        const radius = std * Math.sqrt(-2 * Math.log(u1));
        data[i] = radius * Math.cos(2 * Math.PI * u2);
        if (i + 1 < data.length) data[i + 1] = radius * Math.sin(2 * Math.PI * u2);
      }
      return data;
    },
  };
}

/**
 * A llama2.c tokenizer of exactly `vocabSize` pieces, so a synthetic model runs without the real
 * one: <unk>, <s>, </s>, the 256 byte-fallback pieces, then single characters and lower-case
 * n-grams (each with and without a leading space), so plain text encodes to a few tokens a word.
 */
export function syntheticTokenizer(vocabSize: number): Uint8Array {
  const pieces = ['<unk>', '<s>', '</s>'];
  for (let b = 0; b < 256; b++) pieces.push(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`);
  const letters = 'abcdefghijklmnopqrstuvwxyz';
  const singles = [...letters, ...letters.toUpperCase(), ...'0123456789.,!?;:\'"-()'];
  pieces.push(' ', ...singles, ...singles.map((c) => ` ${c}`));
  let grams = [...letters];
  while (pieces.length < vocabSize) {
    grams = grams.flatMap((g) => [...letters].map((c) => g + c));
    for (const g of grams) pieces.push(g, ` ${g}`);
  }
  pieces.length = vocabSize;
  // llama2.c merges the highest score first: earlier (shorter) pieces win, like a trained vocabulary.
  return llama2cTokenizer(pieces, Float32Array.from(pieces, (_, i) => -i));
}

// ---------------------------------------------------------------------------------------------
// Writing

export interface MakeModelOptions {
  like: Like;
  out: string;
  seed?: number;
  format?: ModelFileFormat;
  /** Storage type of hf and gguf weights (llama2.c .bin is always f32); default bf16, like the real checkpoints. */
  dtype?: FileDtype;
  /** Keep only the first N layers (smaller models of the same widths, for quick runs). */
  layers?: number;
  /** hf only: write the weights as this many shards plus model.safetensors.index.json. */
  shards?: number;
}

export interface MadeModel {
  config: ModelConfig;
  /** Layers of the real model (config.nLayers may be fewer, see --layers). */
  fullLayers: number;
  /** What to pass as --model. */
  model: string;
  /** What to pass as --tokenizer ('' where the model's own is found next to it). */
  tokenizer: string;
  bytes: number;
  /** Ways the files differ from the real model. */
  notes: string[];
}

async function writeChunks(path: string, chunks: Iterable<Uint8Array>): Promise<number> {
  let bytes = 0;
  const counted = (function* () {
    for (const chunk of chunks) {
      bytes += chunk.length;
      yield chunk;
    }
  })();
  // The stream's back-pressure pauses the generator, so at most one tensor is in memory at a time.
  await pipeline(Readable.from(counted, { objectMode: false }), createWriteStream(path));
  return bytes;
}

export async function makeModel(options: MakeModelOptions): Promise<MadeModel> {
  const preset = presets[options.like];
  const format = options.format ?? preset.format;
  const dtype = format === 'bin' ? 'f32' : (options.dtype ?? 'bf16');
  if (format === 'bin' && options.dtype && options.dtype !== 'f32') throw new UsageError('--format bin (llama2.c) stores f32 only');
  if (options.shards !== undefined && format !== 'hf') throw new UsageError('--shards needs --format hf');
  const full = await preset.config();
  if (options.layers !== undefined && (options.layers < 1 || options.layers > full.nLayers)) {
    throw new UsageError(`--layers must be between 1 and ${full.nLayers} for ${options.like}, got ${options.layers}`);
  }
  const config = { ...full, nLayers: options.layers ?? full.nLayers };
  const weights = syntheticWeights(config, options.seed ?? 0);
  const out = resolve(options.out);
  await mkdir(out, { recursive: true });

  const notes = [`synthetic weights (N(0, 0.02), seed ${options.seed ?? 0}), ${options.like} shapes`];
  if (config.nLayers !== full.nLayers) notes.push(`${config.nLayers} of ${full.nLayers} layers`);

  let bytes: number;
  let model: string;
  if (format === 'bin') {
    model = join(out, 'model.bin');
    bytes = await writeChunks(model, llama2cChunks(weights));
  } else if (format === 'gguf') {
    model = join(out, 'model.gguf');
    bytes = await writeChunks(model, ggufModelChunks(weights, dtype));
    notes.push('the GGUF embeds a toy vocabulary ("t3", "t4", ...): pass --tokenizer for real text');
  } else if (options.shards !== undefined) {
    model = out;
    const folder = huggingFaceShardedFolder(weights, dtype, options.shards);
    await writeFile(join(out, 'config.json'), folder['config.json']);
    await writeFile(join(out, shardIndexName), folder[shardIndexName]);
    bytes = 0;
    for (const [name, chunks] of folder.shards) bytes += await writeChunks(join(out, name), chunks);
  } else {
    model = out;
    const folder = huggingFaceFolder(weights, dtype);
    await writeFile(join(out, 'config.json'), folder['config.json']);
    bytes = await writeChunks(join(out, 'model.safetensors'), folder['model.safetensors']);
  }

  // The real tokenizer where we have it; otherwise a synthetic one of the right size.
  let tokenizerFile: string;
  if (options.like === 'smollm2-135m') {
    tokenizerFile = join(out, 'tokenizer.json');
    // Read and written rather than copied, so the copy does not inherit a read-only mode.
    await writeFile(tokenizerFile, await readFile(join(smollm2Dir(), 'tokenizer.json')));
  } else {
    tokenizerFile = join(out, `tok${config.vocabSize}.bin`);
    await writeFile(tokenizerFile, syntheticTokenizer(config.vocabSize));
    notes.push(`${tokenizerFile} is a synthetic llama2.c tokenizer (byte pieces and letter n-grams), not the real ${options.like} one`);
  }
  // The loaders find tokenizer.json in a Hugging Face folder and tok{vocab}.bin beside a .bin.
  const found = (format === 'hf' && options.like === 'smollm2-135m') || (format === 'bin' && options.like !== 'smollm2-135m');
  return { config, fullLayers: full.nLayers, model, tokenizer: found ? '' : tokenizerFile, bytes, notes };
}

export async function main(args: string[]): Promise<number> {
  let options: MakeModelOptions;
  try {
    const values = parseOptions(args, {
      like: { type: 'string' },
      out: { type: 'string' },
      seed: { type: 'string' },
      format: { type: 'string' },
      dtype: { type: 'string' },
      layers: { type: 'string' },
      shards: { type: 'string' },
      help: { type: 'boolean', default: false },
    });
    if (values.help) {
      console.log(usage);
      return 0;
    }
    const like = values.like as Like;
    if (!likes.includes(like)) throw new UsageError(`--like must be one of ${likes.join(', ')}, got ${JSON.stringify(values.like ?? null)}`);
    if (!values.out) throw new UsageError('--out DIR is required');
    const format = values.format as ModelFileFormat | undefined;
    if (format !== undefined && !['hf', 'gguf', 'bin'].includes(format)) throw new UsageError(`--format must be hf, gguf or bin, got "${format}"`);
    const dtype = values.dtype as FileDtype | undefined;
    if (dtype !== undefined && !['f32', 'f16', 'bf16'].includes(dtype)) throw new UsageError(`--dtype must be f32, f16 or bf16, got "${dtype}"`);
    const seed = numberOption(values.seed, 'seed', 0, (n) => Number.isInteger(n) && n >= 0 && n <= 0xffffffff, 'an integer in [0, 2^32)');
    const layers = values.layers === undefined ? undefined : numberOption(values.layers, 'layers', 1, (n) => Number.isInteger(n) && n >= 1, 'a whole number >= 1');
    const shards = values.shards === undefined ? undefined : numberOption(values.shards, 'shards', 1, (n) => Number.isInteger(n) && n >= 1, 'a whole number >= 1');
    options = { like, out: values.out, seed, format, dtype, layers, shards };
  } catch (error) {
    console.error(`error: ${(error as Error).message}\n${usage}`);
    return 2;
  }

  try {
    const started = performance.now();
    const made = await makeModel(options);
    const c = made.config;
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    console.log(`wrote ${(made.bytes / 1e6).toFixed(1)} MB in ${seconds} s: ${made.model}`);
    console.log(`  dim ${c.dim}, FFN ${c.hiddenDim}, ${c.nLayers} layers, ${c.nHeads} heads (${c.nKvHeads} KV), vocab ${c.vocabSize}, rope theta ${c.ropeTheta}${c.tiedEmbeddings ? ', tied classifier' : ''}${c.attentionBias ? ', q/k/v biases' : ''}${c.ropeScaling ? `, ${c.ropeScaling.kind} RoPE scaling` : ''}`);
    for (const note of made.notes) console.log(`  note: ${note}`);
    console.log(`  run: npm run -s generate -- --model ${made.model}${made.tokenizer ? ` --tokenizer ${made.tokenizer}` : ''}`);
    return 0;
  } catch (error) {
    console.error(`error: ${(error as Error).message}`);
    return error instanceof UsageError ? 2 : 1;
  }
}
