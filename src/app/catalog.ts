// Models the lab offers to download from the Hugging Face Hub, with the facts needed before any
// byte is fetched: their files, their shapes (from each repo's config.json or llama2.c header,
// written in here), the download size and, through the preflight, the GPU memory each weight
// format needs. Sizes marked approximate are computed from the shapes (bf16 safetensors: two bytes
// a weight plus a small header); llama2.c sizes are exact (its layout is fixed by the shapes).
import type { ModelConfig } from '../engine/model/types.ts';
import { preflight, type BufferLimits, type PreflightVerdict } from '../engine/model/preflight.ts';
import type { ModelPlan, PlannedFile } from '../engine/hub/plan.ts';
import { resolveUrl } from '../engine/hub/reference.ts';

export interface CatalogEntry {
  /** The lab's model id once stored (the same id a typed-in reference to these files gets). */
  id: string;
  title: string;
  repo: string;
  /** What the learner gets from it. */
  note: string;
  /** A file or sub-folder of the repo, or '' for a Hugging Face folder at its root. */
  entry: string;
  /** A tokenizer the model file does not carry (relative to the repo, or an absolute URL). */
  tokenizer?: string;
  files: PlannedFile[];
  /** Weights as stored in the repo ('f32 llama2.c', 'bf16 safetensors'). */
  sourceFormat: string;
  /** Bytes to download; `downloadApproximate` when computed rather than known. */
  downloadBytes: number;
  downloadApproximate: boolean;
  config: ModelConfig;
}

/** Weights of a model, classifier included when it is not the embedding. */
export function parameterCount(c: ModelConfig): number {
  const qDim = c.nHeads * c.headDim;
  const kvDim = c.nKvHeads * c.headDim;
  const biases = c.attentionBias ? qDim + 2 * kvDim : 0;
  const perLayer = c.dim * qDim + 2 * c.dim * kvDim + qDim * c.dim + 3 * c.dim * c.hiddenDim + 2 * c.dim + biases;
  return c.vocabSize * c.dim * (c.tiedEmbeddings ? 1 : 2) + c.nLayers * perLayer + c.dim;
}

/** A llama2.c legacy .bin: 7 int32, every weight as f32, then the RoPE cos/sin tables (maxSeqLen x headDim/2 each). */
export function llama2cFileBytes(c: ModelConfig): number {
  return 28 + 4 * (parameterCount(c) + c.maxSeqLen * c.headDim);
}

/** Two bytes a weight; the safetensors JSON header adds a few KiB. */
function bf16SafetensorsBytes(c: ModelConfig): number {
  return 2 * parameterCount(c);
}

const llama2cDefaults = { architecture: 'llama', ropeTheta: 10000, rmsEps: 1e-5, tiedEmbeddings: true, bosTokenId: 1, eosTokenId: 2 } as const;

/** The llama2.c tokenizer (32,000 pieces) the 15M/42M/110M stories models use; karpathy/tinyllamas does not carry it. */
const llama2cTokenizerUrl = 'https://raw.githubusercontent.com/karpathy/llama2.c/master/tokenizer.bin';

/** A karpathy/tinyllamas model; `tokenizer` is its path and, when known, its size. */
function tinyllama(name: string, shape: Omit<ModelConfig, keyof typeof llama2cDefaults>, note: string, folder = '', tokenizer: PlannedFile = { path: llama2cTokenizerUrl }): CatalogEntry {
  const config: ModelConfig = { ...llama2cDefaults, ...shape };
  const entry = `${folder}${name}.bin`;
  const bytes = llama2cFileBytes(config);
  return {
    id: `hub:karpathy/tinyllamas/${entry}`,
    title: name,
    repo: 'karpathy/tinyllamas',
    note,
    entry,
    tokenizer: tokenizer.path,
    files: [{ path: entry, size: bytes }, tokenizer],
    sourceFormat: 'f32 llama2.c .bin',
    downloadBytes: bytes,
    downloadApproximate: false,
    config,
  };
}

function hfFolder(repo: string, title: string, config: ModelConfig, note: string): CatalogEntry {
  return {
    id: `hub:${repo}`,
    title,
    repo,
    note,
    entry: '',
    files: ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json'].map((path) => ({ path })),
    sourceFormat: 'bf16 safetensors',
    downloadBytes: bf16SafetensorsBytes(config),
    downloadApproximate: true,
    config,
  };
}

const smolLm2 = { architecture: 'llama', headDim: 64, vocabSize: 49152, maxSeqLen: 8192, ropeTheta: 100000, rmsEps: 1e-5, tiedEmbeddings: true, bosTokenId: 1, eosTokenId: 2 } as const;

export const catalog: readonly CatalogEntry[] = [
  tinyllama('stories260K', { dim: 64, hiddenDim: 172, nLayers: 5, nHeads: 8, nKvHeads: 4, headDim: 8, vocabSize: 512, maxSeqLen: 512 }, 'the 260K-weight TinyStories model, with its 512-piece tokenizer', 'stories260K/', { path: 'stories260K/tok512.bin', size: 6227 }),
  tinyllama('stories15M', { dim: 288, hiddenDim: 768, nLayers: 6, nHeads: 6, nKvHeads: 6, headDim: 48, vocabSize: 32000, maxSeqLen: 256 }, 'TinyStories, 15M weights, Llama 2 tokenizer'),
  tinyllama('stories42M', { dim: 512, hiddenDim: 1376, nLayers: 8, nHeads: 8, nKvHeads: 8, headDim: 64, vocabSize: 32000, maxSeqLen: 1024 }, 'TinyStories, 42M weights'),
  tinyllama('stories110M', { dim: 768, hiddenDim: 2048, nLayers: 12, nHeads: 12, nKvHeads: 12, headDim: 64, vocabSize: 32000, maxSeqLen: 1024 }, 'TinyStories, 110M weights'),
  hfFolder('HuggingFaceTB/SmolLM2-135M-Instruct', 'SmolLM2-135M-Instruct', { ...smolLm2, dim: 576, hiddenDim: 1536, nLayers: 30, nHeads: 9, nKvHeads: 3 }, 'a small chat model (grouped-query attention, chat template)'),
  hfFolder('HuggingFaceTB/SmolLM2-360M-Instruct', 'SmolLM2-360M-Instruct', { ...smolLm2, dim: 960, hiddenDim: 2560, nLayers: 32, nHeads: 15, nKvHeads: 5 }, 'the same family, 360M weights'),
  hfFolder(
    'Qwen/Qwen2.5-0.5B-Instruct',
    'Qwen2.5-0.5B-Instruct',
    { architecture: 'llama', dim: 896, hiddenDim: 4864, nLayers: 24, nHeads: 14, nKvHeads: 2, headDim: 64, vocabSize: 151936, maxSeqLen: 32768, ropeTheta: 1000000, rmsEps: 1e-6, tiedEmbeddings: true, bosTokenId: 151643, eosTokenId: 151645, attentionBias: true },
    'Qwen2: biases on the q/k/v projections, a 152K vocabulary',
  ),
  hfFolder(
    'unsloth/Llama-3.2-1B-Instruct',
    'Llama-3.2-1B-Instruct',
    {
      architecture: 'llama', dim: 2048, hiddenDim: 8192, nLayers: 16, nHeads: 32, nKvHeads: 8, headDim: 64, vocabSize: 128256, maxSeqLen: 131072,
      ropeTheta: 500000, rmsEps: 1e-5, tiedEmbeddings: true, bosTokenId: 128000, eosTokenId: 128001,
      ropeScaling: { kind: 'llama3', factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 },
    },
    'Llama 3 RoPE scaling, 1.2B weights',
  ),
];

/** The KV cache the engine allocates by default: 2048 tokens, or fewer when the model was trained for fewer. */
export function defaultContextLength(c: ModelConfig): number {
  return Math.min(2048, c.maxSeqLen);
}

/** Does the model fit here, in each weight format the catalog shows? */
export function verdicts(c: ModelConfig, limits: BufferLimits, freeMemoryBytes: number): PreflightVerdict[] {
  return preflight(c, limits, freeMemoryBytes, defaultContextLength(c));
}

/** The entry's files on the Hub at `hubUrl`, as a download plan. */
export function catalogPlan(entry: CatalogEntry, hubUrl: string): ModelPlan {
  const plan: ModelPlan = {
    id: entry.id,
    label: `${entry.repo}${entry.entry ? `/${entry.entry}` : ''}`,
    baseUrl: resolveUrl(hubUrl, entry.repo, 'main', ''),
    entry: entry.entry,
    files: entry.files,
    config: entry.config,
  };
  if (entry.tokenizer) plan.tokenizer = entry.tokenizer;
  return plan;
}
