// The engine's public contract. Two implementations share it: the in-process engine (Node CLI,
// tests, and inside the Web Worker) and WorkerEngine (the page's proxy to the worker).
import type { PageSnapshot } from './kv/page-pool.ts';
import type { KvMemoryReport } from './kv/kv-memory.ts';
import type { ModelConfig } from './model/types.ts';
import type { RequestTimeline } from './timeline.ts';
import type { BandwidthReport, EngineSettings, LoadReport, MemoryReport, SettingChoices, ShaderEditReport, StepDistribution, StepProfile, WorkbenchReport, WorkbenchRequest } from './telemetry.ts';

/** What the adapter can do, reported once at start-up (see gpu/device.ts). */
export interface AdapterReport {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  /** True for software adapters (SwiftShader, lavapipe): timings are not GPU timings. */
  isFallbackAdapter: boolean;
  features: {
    shaderF16: boolean;
    subgroups: boolean;
    timestampQuery: boolean;
  };
  subgroupMinSize: number | null;
  subgroupMaxSize: number | null;
  limits: {
    maxBufferSize: number;
    maxStorageBufferBindingSize: number;
    maxComputeWorkgroupStorageSize: number;
    maxComputeInvocationsPerWorkgroup: number;
    maxComputeWorkgroupSizeX: number;
    maxComputeWorkgroupsPerDimension: number;
    maxStorageBuffersPerShaderStage: number;
  };
}

export interface ModelInfo {
  /** Human-readable origin, e.g. "stories260K.bin (llama2.c)". */
  source: string;
  config: ModelConfig;
  /** Which tokenizer was loaded, e.g. "tok512.bin (llama2.c)". */
  tokenizer: string;
  /** True when the tokenizer brought a chat template (instruct models): requests may set `chat`. */
  chatTemplate: boolean;
  /** Bytes of weights resident on the GPU. */
  weightBytes: number;
  /** Format of the projection and classifier weights on the GPU (f32, f16, q8_0, q4_0, ...). */
  weightFormat: string;
  /** The matvec kernel variant in use (tuned on this adapter unless forced). */
  matvecVariant: string;
  /** The switches as they are now (matvecVariant 'auto' when the tuning run chose it). */
  settings: EngineSettings;
  /** What each switch may be set to on this adapter. */
  choices: SettingChoices;
  /** The roofline probe, run when the engine started. */
  bandwidth: BandwidthReport;
  memory: MemoryReport;
  load: LoadReport;
}

export interface GenerateRequest {
  prompt: string;
  /** Tokens to generate after the prompt (stops earlier at EOS or when the context is full). */
  maxTokens: number;
  /** 0 means greedy (argmax). */
  temperature: number;
  /** Seed of the sampler's counter-based RNG: the same seed gives the same text. */
  seed: number;
  /** Keep only the k most likely tokens (0 or absent: off). */
  topK?: number;
  /** Nucleus: keep the most likely tokens holding this share of the probability (1 or absent: off). */
  topP?: number;
  /** Keep tokens at least this likely relative to the most likely one (0 or absent: off). */
  minP?: number;
  /** Divides a repeated token's positive logit (multiplies a negative one); 1 or absent: off. Single sequences only. */
  repetitionPenalty?: number;
  /** Subtracted from a token's logit per earlier occurrence (0 or absent: off). Single sequences only. */
  frequencyPenalty?: number;
  /** Subtracted from the logit of any token that occurred (0 or absent: off). Single sequences only. */
  presencePenalty?: number;
  /**
   * Constrained decoding: 'json' (one JSON value) or 'regex:PATTERN' (the whole output matches).
   * Tokens the constraint does not allow next are masked on the GPU before sampling; generation
   * ends with EOS once the output is complete. Single sequences on the contiguous KV cache.
   */
  constraint?: string;
  /**
   * Treat the prompt as a user's message and wrap it in the model's chat template (with the
   * assistant's generation prompt). Only for models whose ModelInfo.chatTemplate is true.
   */
  chat?: boolean;
  /**
   * Report the top `inspect` candidates of each step's next-token distribution (TokenEvent.distribution).
   * Reads the logits back every step, so it slows decoding; 0 or absent for full speed.
   */
  inspect?: number;
}

export interface TokenEvent {
  /** Position of this token in the whole sequence (BOS is 0). */
  position: number;
  token: number;
  /** Text this token adds (may be empty while a multi-byte character is incomplete). */
  text: string;
  /** Wall time of the decode step that produced this token. */
  stepMs: number;
  /** The distribution this token was sampled from, when the request asked to inspect it. */
  distribution?: StepDistribution;
}

export type StopReason = 'eos' | 'length' | 'context' | 'cancelled';

export interface GenerateResult {
  /** The whole sequence: BOS, the prompt's tokens, then the generated ones. */
  tokens: number[];
  /** Generated text only (the prompt is not repeated). */
  text: string;
  promptTokens: number;
  generatedTokens: number;
  prefillMs: number;
  decodeMs: number;
  decodeTokensPerSecond: number;
  stopReason: StopReason;
  /** Under a constraint: the time spent computing token masks (it must not dominate the step). */
  constraint?: ConstraintReport;
  /** With speculative decoding on: how well the draft guessed and what the verification passes cost. */
  speculative?: SpeculativeReport;
  /** Where the generation's time went, stage by stage and token by token (the lab's pipeline panel). */
  timeline?: RequestTimeline;
}

/** Speculative decoding's account of one generation. */
export interface SpeculativeReport {
  /** 'draft-q4', 'ngram' or the draft model's source. */
  draft: string;
  /** Tokens proposed per pass (a pass proposes fewer near the end of the budget or the context). */
  draftTokens: number;
  /** Forward passes of the target model: one per verification, the prompt's prefill not counted. */
  targetPasses: number;
  proposed: number;
  accepted: number;
  /** accepted / proposed. */
  acceptanceRate: number;
  /** Generated tokens per target pass (1 without speculation; up to draftTokens + 1). */
  tokensPerTargetPass: number;
  /** Wall time spent drafting and verifying (the rest of decodeMs is sampling and streaming). */
  draftMs: number;
  verifyMs: number;
}

export interface ConstraintReport {
  spec: string;
  /** Masks computed or served from the cache, one per sampled step. */
  maskCalls: number;
  cacheHits: number;
  /** Total and worst time of a mask. */
  maskMs: number;
  maxMaskMs: number;
  /** Whether the output satisfies the constraint (false when it stopped early, e.g. at maxTokens). */
  complete: boolean;
}

/** Many generations served together by continuous batching over a paged KV cache. */
export interface BatchGenerateRequest {
  /** One request per sequence, each with its own prompt, max tokens, temperature, seed (and chat); `inspect` is not supported here. */
  requests: GenerateRequest[];
  /** Sequences running at once (default: all of them, at most 32); the others wait for a slot. */
  maxBatch?: number;
  /**
   * 'paged' (default): a sequence gets pages as its tokens arrive. 'contiguous': each sequence
   * takes one run of pages as long as the whole context when it is admitted (the baseline).
   */
  kv?: 'paged' | 'contiguous';
  /** Tokens per KV page: 8, 16 (default) or 32. */
  pageSize?: number;
  /** Serve full pages of earlier prompts from the prefix cache (default true; paged only). */
  prefixCache?: boolean;
  /** Prompt tokens one sequence prefills per step (default 32), so long prompts share steps with decodes. */
  prefillChunk?: number;
  /** Attention kernel for the paged cache (default 'fused'). */
  attention?: PagedAttentionChoice;
}

/** Attention over the paged cache: one fused online-softmax kernel, its split-K twin, or scores → softmax → weighted sum. */
export type PagedAttentionChoice = EngineSettings['attention'];

export interface BatchSequenceResult {
  prompt: string;
  /** The whole sequence: prompt tokens (BOS included), then the generated ones. */
  tokens: number[];
  /** Generated text only. */
  text: string;
  promptTokens: number;
  generatedTokens: number;
  /** Prompt tokens whose K/V came from the prefix cache. */
  cachedTokens: number;
  /** Submit to first generated token, queueing included. */
  ttftMs: number | null;
  /** Mean time per generated token after the first. */
  tpotMs: number | null;
  stopReason: StopReason;
}

/** KV memory while a batch runs (bytes), as the KV-cache panel draws it. */
export interface BatchKvState {
  mode: 'paged' | 'contiguous';
  pageSize: number;
  pageCount: number;
  pageBytes: number;
  /** Bytes the running sequences hold in pages, and how many of them hold K/V of existing tokens. */
  reservedBytes: number;
  liveBytes: number;
  /** Pages only the prefix cache holds (free to reclaim). */
  cachedPages: number;
  /** The same sequences under both layouts (what contiguous allocation would reserve, and paged). */
  paged: KvMemoryReport;
  contiguous: KvMemoryReport;
}

/** Reported after every batched step (pages only every ~100 ms and on the last step: they are big). */
export interface BatchStepEvent {
  step: number;
  /** Rows (tokens) the step ran, prefill chunks included. */
  rows: number;
  running: number;
  waiting: number;
  kv: BatchKvState;
  /** Every page of the pool; owners are 'request-N' for requests[N]. */
  pages?: PageSnapshot[];
}

export interface BatchTokenEvent {
  /** Index into BatchGenerateRequest.requests. */
  sequence: number;
  token: number;
  text: string;
}

export interface BatchGenerateResult {
  sequences: BatchSequenceResult[];
  wallMs: number;
  /** Generated tokens of every sequence per second of wall time. */
  aggregateTokensPerSecond: number;
  /** Mean over sequences of 1000 / tpotMs: the speed one user sees once their answer streams. */
  perUserTokensPerSecond: number;
  steps: number;
  /** Rows run (prompt tokens computed + generated tokens). */
  rows: number;
  maxBatch: number;
  /** The largest reservation seen (step where the most KV bytes were held). */
  kvPeak: BatchKvState;
  prefix: { hitTokens: number; computedTokens: number };
  attention: PagedAttentionChoice;
}

export interface Engine {
  readonly adapter: AdapterReport;
  readonly model: ModelInfo;
  generate(request: GenerateRequest, onToken?: (event: TokenEvent) => void, signal?: AbortSignal): Promise<GenerateResult>;
  /** Runs many requests at once (continuous batching over a paged KV cache); streams tokens and per-step state. */
  generateBatch(
    request: BatchGenerateRequest,
    onEvent?: { token?: (event: BatchTokenEvent) => void; step?: (event: BatchStepEvent) => void },
    signal?: AbortSignal,
  ): Promise<BatchGenerateResult>;
  /** Changes switches on the loaded model (re-packs weights, rebuilds dispatches); returns the new ModelInfo. */
  reconfigure(settings: Partial<EngineSettings>): Promise<ModelInfo>;
  /** Per-kernel GPU time of one decode step at `position` (default: a quarter of the context). */
  profileStep(options?: { position?: number; repetitions?: number }): Promise<StepProfile>;
  /** Runs every variant of an op at a shape against the CPU reference and the roofline probe. */
  runWorkbench(request: WorkbenchRequest): Promise<WorkbenchReport>;
  /** The WGSL the engine compiles for a kernel family now (an accepted edit, else shaders/<family>.wgsl). */
  shaderSource(family: string): Promise<string>;
  /** Compiles edited WGSL, checks it against the reference, and only then swaps it into the running model. */
  editShader(family: string, source: string): Promise<ShaderEditReport>;
  /** Drops an accepted edit: the family goes back to shaders/<family>.wgsl. */
  resetShader(family: string): Promise<void>;
  dispose(): void;
}
