// The engine's public contract. Two implementations share it: the in-process engine (Node CLI,
// tests, and inside the Web Worker) and WorkerEngine (the page's proxy to the worker).
import type { ModelConfig } from './model/types.ts';

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
  /** Bytes of weights resident on the GPU. */
  weightBytes: number;
  /** Format of the projection and classifier weights on the GPU (f32, f16, q8_0, q4_0, ...). */
  weightFormat: string;
  /** The matvec kernel variant in use (tuned on this adapter unless forced). */
  matvecVariant: string;
}

export interface GenerateRequest {
  prompt: string;
  /** Tokens to generate after the prompt (stops earlier at EOS or when the context is full). */
  maxTokens: number;
  /** 0 means greedy (argmax). */
  temperature: number;
  /** Seed of the sampler's counter-based RNG: the same seed gives the same text. */
  seed: number;
}

export interface TokenEvent {
  /** Position of this token in the whole sequence (BOS is 0). */
  position: number;
  token: number;
  /** Text this token adds (may be empty while a multi-byte character is incomplete). */
  text: string;
  /** Wall time of the decode step that produced this token. */
  stepMs: number;
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
}

export interface Engine {
  readonly adapter: AdapterReport;
  readonly model: ModelInfo;
  generate(request: GenerateRequest, onToken?: (event: TokenEvent) => void, signal?: AbortSignal): Promise<GenerateResult>;
  dispose(): void;
}
