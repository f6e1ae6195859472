// What the engine measures about itself, in the shapes the lab's panels draw. Every figure here is
// measured on the running adapter (or derived from a cost model and labelled so); a recorded run of
// these objects (a LabTrace, see src/app/trace.ts) lets every panel render without a GPU.
import type { TimingMethod } from './gpu/timing.ts';

/** Achievable memory bandwidth of the adapter, measured by the roofline probe (kernels/bandwidth.ts). */
export interface BandwidthReport {
  /** Bytes read per second / 1e9 by the read kernel: the roofline every kernel is compared to. */
  readGBps: number;
  /** (Bytes read + bytes written) per second / 1e9 by the copy kernel. */
  copyGBps: number;
  /** Size of the probed buffer. */
  bytes: number;
  method: TimingMethod;
}

/** Where the loaded model's bytes live on the GPU (our own allocations; not the adapter's free memory). */
export interface MemoryReport {
  /** Projection and classifier matrices in the chosen weight format. */
  matrixBytes: number;
  /** Token embedding table (f32; one row is gathered per token). */
  embeddingBytes: number;
  /** RMSNorm weights and other vectors. */
  vectorBytes: number;
  /** Key and value caches for the whole context, all layers. */
  kvCacheBytes: number;
  /** K and V bytes one token adds across all layers. */
  kvBytesPerToken: number;
  /** Scratch activations of one step (RunState minus the caches). */
  activationBytes: number;
  /** Tokens the KV cache holds. */
  contextLength: number;
  /** Bytes one decode step at position 0 reads under the cost models (weights, caches, activations). */
  bytesPerToken: number;
}

/** How long loading took, per stage, and the transfer rates that implies. */
export interface LoadReport {
  /** Bytes of the model file(s) read (downloaded in the browser, read from disk in Node). */
  fileBytes: number;
  /** Time to read/download and parse the files. */
  readMs: number;
  /** Bytes written to the GPU (weights after packing into the weight format). */
  uploadBytes: number;
  /** Time from the first weight upload until the queue finished them all (includes packing). */
  uploadMs: number;
  /** Time to compile every pipeline the model uses and tune the matvec variant. */
  compileMs: number;
}

/** The switches the engine honours on a loaded model (each can be changed while it stays loaded). */
export interface EngineSettings {
  /** Format of the projection and classifier weights: 'f32' | 'f16' | 'f16-native' | 'q8_0' | 'q4_0'. */
  weightFormat: string;
  /** Matvec variant for every projection; 'auto' lets the on-device tuning run choose. */
  matvecVariant: string;
  /**
   * 'gpu': the sampler kernel picks the token with threshold searches, no sort (4 bytes read back);
   * 'gpu-sort': the same choice from a bitonic sort of the logits on the GPU; 'cpu': logits are read
   * back and sampled in TypeScript.
   */
  sampler: SamplerKind;
  /**
   * 'contiguous': the single-sequence model (one cache sized for the context, token-by-token
   * prefill). 'paged': generations run through the batched model with one sequence: pages, chunked
   * prefill through the matrix-matrix kernel, the prefix cache. Batched runs are always paged.
   */
  kvCache: 'contiguous' | 'paged';
  /** Tokens per KV page (8, 16 or 32) for the paged cache. */
  pageSize: number;
  /** Reuse K/V pages of earlier prompts' shared prefixes (paged cache only). */
  prefixCache: boolean;
  /** Attention kernel of the paged cache: 'fused' (online softmax), 'splitK' (flash-decoding chunks + reduce) or 'unfused' (scores, softmax, weighted sum). */
  attention: 'fused' | 'splitK' | 'unfused';
  /**
   * Speculative decoding: a draft proposes `draftTokens` tokens and the model checks them all in one
   * batched pass (paged KV cache). 'draft-q4': the same model in q4_0; 'ngram': prompt lookup (no
   * draft model); 'draft-model': the smaller model given to the engine as its draft; 'off'.
   */
  speculative: SpeculativeKind;
  /** Tokens a draft proposes per verification pass (1 to 8). */
  draftTokens: number;
}

export type SamplerKind = 'gpu' | 'gpu-sort' | 'cpu';
export type SpeculativeKind = 'off' | 'draft-q4' | 'ngram' | 'draft-model';

/** A switch value the adapter cannot run, with the reason (e.g. "needs shader-f16"). */
export interface UnavailableChoice {
  value: string;
  reason: string;
}

/** What each switch may be set to on this adapter. */
export interface SettingChoices {
  weightFormat: { available: string[]; unavailable: UnavailableChoice[] };
  matvecVariant: { available: string[]; unavailable: UnavailableChoice[] };
  sampler: { available: SamplerKind[]; unavailable: UnavailableChoice[] };
  kvCache: { available: Array<'contiguous' | 'paged'>; unavailable: UnavailableChoice[] };
  pageSize: { available: number[]; unavailable: UnavailableChoice[] };
  prefixCache: { available: boolean[]; unavailable: UnavailableChoice[] };
  attention: { available: Array<'fused' | 'splitK' | 'unfused'>; unavailable: UnavailableChoice[] };
  speculative: { available: SpeculativeKind[]; unavailable: UnavailableChoice[] };
  draftTokens: { available: number[]; unavailable: UnavailableChoice[] };
}

/** GPU time of one kernel launch inside a decode step. */
export interface KernelTiming {
  /** Dispatch label, e.g. "layers.3.wq" or "finalNorm". */
  label: string;
  /** Kind of operation: 'embedding' | 'rmsnorm' | 'matvec' | 'rope' | 'attention' | 'add' | 'swiglu' | 'sample' | ... */
  op: string;
  /** Transformer layer, or null for the embedding and the head. */
  layer: number | null;
  /** Mean GPU time of this dispatch. */
  ms: number;
  /** From the kernel's cost model. */
  bytesRead: number;
  bytesWritten: number;
  flops: number;
}

/** Per-kernel GPU times of one decode step, averaged over `repetitions` runs. */
export interface StepProfile {
  /** 'timestamp': one timestamped compute pass per dispatch; 'wall': each dispatch submitted and awaited alone. */
  method: TimingMethod;
  /** Resolution of one measurement: the timestamp period, or the wall clock's granularity (ms). */
  resolutionMs: number;
  repetitions: number;
  /** Position the profiled step attends up to (attention cost grows with it). */
  position: number;
  kernels: KernelTiming[];
  /** Sum of the kernel times (launch gaps excluded). */
  totalMs: number;
  /** Per-dispatch passes perturb the step (no overlap between kernels): stated next to the figures. */
  note: string;
}

/** One candidate of the next-token distribution, for the sampling panel. */
export interface TokenCandidate {
  token: number;
  /** The token's text as the tokenizer decodes it alone. */
  piece: string;
  logit: number;
}

/** The next-token distribution of one step: the top candidates by logit, before sampling. */
export interface StepDistribution {
  position: number;
  /** Top candidates, highest logit first. */
  candidates: TokenCandidate[];
  /** The token that was sampled. */
  sampled: number;
  temperature: number;
  /** Softmax denominator over the whole vocabulary at temperature 1 (so probabilities of the candidates are exact). */
  logSumExp: number;
  /** What the sampler's cuts kept (temperature > 0 with top-k, top-p or min-p on); absent otherwise. */
  kept?: KeptCandidates;
}

/** The candidate set that survived the sampler's cuts, as the sampler computed it. */
export interface KeptCandidates {
  /** How many tokens the cuts kept (the lists below may stop earlier: at most 200 entries). */
  count: number;
  /** Kept token ids, most likely first (ties: lower id first). */
  tokens: number[];
  /** Each kept token's probability after renormalizing over the kept set (same order). */
  probabilities: number[];
  /** Running sum of `probabilities` (same order; the last is 1). */
  cumulative: number[];
  /** Share of the full distribution (at the request's temperature) the kept set holds. */
  keptMass: number;
  /** The cutoffs: the k-th largest logit (top-k on), the smallest weight top-p kept (on), the weight floor (relative to the top token, 1). */
  topKLogit: number | null;
  topPWeight: number | null;
  minWeight: number;
}

/** Request for the kernel workbench: run every variant of one op at one shape. */
export type WorkbenchRequest = MatvecWorkbenchRequest | AttentionWorkbenchRequest;

export interface MatvecWorkbenchRequest {
  op: 'matvec';
  format: string;
  rows: number;
  cols: number;
  /** Timed repetitions per variant (default 10). */
  repetitions?: number;
}

/** Decode attention of `batch` sequences of `length` tokens each: paged fused / split-K / unfused, and the contiguous kernel. */
export interface AttentionWorkbenchRequest {
  op: 'attention';
  batch: number;
  length: number;
  nHeads: number;
  nKvHeads: number;
  headDim: number;
  /** Tokens per KV page (8, 16 or 32). */
  blockSize: number;
  /** Timed repetitions per variant (default 10). */
  repetitions?: number;
}

export interface WorkbenchVariantResult {
  variant: string;
  /** Mean GPU (or wall) time of one dispatch; null when the variant could not run. */
  ms: number | null;
  gbps: number | null;
  gflops: number | null;
  /** gbps ÷ the probe's readGBps measured in the same run. */
  fractionOfProbe: number | null;
  /** Against the CPU reference (dequantized weights, f64 accumulation). */
  maxAbsError: number | null;
  /** Why the variant did not run (missing feature, compile error, wrong result). */
  error?: string;
  /** True when this variant's WGSL comes from a user edit rather than shaders/. */
  edited: boolean;
}

export interface WorkbenchReport {
  request: Required<WorkbenchRequest>;
  bytesRead: number;
  bytesWritten: number;
  flops: number;
  probeGBps: number;
  method: TimingMethod;
  results: WorkbenchVariantResult[];
}

/** Outcome of submitting edited WGSL for a kernel family. */
export interface ShaderEditReport {
  family: string;
  /** True when the edit compiled, matched the reference for every format and variant it serves, and now runs in the model. */
  accepted: boolean;
  /** Compile errors with line numbers ("matvec.wgsl:12:5: ..."), or the check that failed. */
  errors: string[];
  /** The checks that ran: format/variant and the max error found. */
  checks: Array<{ format: string; variant: string; maxAbsError: number | null; ok: boolean; error?: string }>;
}
