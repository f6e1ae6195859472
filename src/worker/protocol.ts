// The page <-> engine worker protocol. Requests and responses are discriminated unions on `type`,
// each with its own payload, so neither side needs a cast. Every request carries an `id`
// (a uuid) that all of its responses echo; errors cross as { name, message } (serializeError) and
// are rebuilt as typed classes on the page (rebuildError).
import type {
  AdapterReport,
  BatchGenerateRequest,
  BatchGenerateResult,
  BatchStepEvent,
  BatchTokenEvent,
  GenerateRequest,
  GenerateResult,
  ModelInfo,
  TokenEvent,
} from '../engine/engine.ts';
import type { SerializedError } from '../engine/errors.ts';
import type { CacheLocation } from '../engine/hub/cache-store.ts';
import type { EngineSettings, ShaderEditReport, StepProfile, WorkbenchReport, WorkbenchRequest } from '../engine/telemetry.ts';

/** Matvec tuning results by key (the worker has no localStorage: the page keeps them and passes them in). */
export type TuningEntries = Record<string, string>;

export interface LoadPayload {
  /** Absolute URL of the models directory, ending in '/', e.g. "http://127.0.0.1:5173/models/". */
  modelsUrl: string;
  /** Model path relative to modelsUrl: a file (.bin, .gguf) or a Hugging Face folder. */
  entry: string;
  /** Tokenizer path relative to modelsUrl, when the model file has none of its own. */
  tokenizer?: string;
  /** Read the files from the browser's model cache instead (a downloaded or dropped model): entry and tokenizer are relative to its baseUrl. */
  cache?: CacheLocation;
  /** Switches to start with (the engine's defaults for those left out). */
  settings?: Partial<EngineSettings>;
  /** Tuning results from earlier sessions on this adapter. */
  tuning?: TuningEntries;
}

type Empty = Record<string, never>;

/** What each request type carries. */
interface RequestPayloads {
  /** Reports the adapter's capabilities without loading a model. */
  probe: Empty;
  /** Creates the worker's engine (replacing any earlier one). */
  load: LoadPayload;
  /** Runs one generation on the loaded engine; streams `token` responses, ends with `generated`. */
  generate: GenerateRequest;
  /**
   * Runs many requests as one continuous batch; streams the `batchToken` and `batchStep` responses
   * the page asked for in `stream` (a step with the page pool is big: none is built unasked), ends
   * with `batchGenerated`.
   */
  generateBatch: { request: BatchGenerateRequest; stream: { tokens: boolean; steps: boolean } };
  /** Aborts the generation (single or batched) whose request id is `generateId` (no response of its own). */
  cancel: { generateId: string };
  reconfigure: { settings: Partial<EngineSettings> };
  profile: { position?: number; repetitions?: number };
  workbench: WorkbenchRequest;
  shaderSource: { family: string };
  editShader: { family: string; source: string };
  resetShader: { family: string };
  /** Frees the engine's GPU resources; the worker closes after answering. */
  dispose: Empty;
}

/** What each response type carries. */
interface ResponsePayloads {
  probed: { adapter: AdapterReport };
  progress: { message: string };
  /** `tuning`: every tuning result the worker knows, to be kept by the page. */
  loaded: { adapter: AdapterReport; model: ModelInfo; tuning: TuningEntries };
  reconfigured: { model: ModelInfo; tuning: TuningEntries };
  profiled: StepProfile;
  benched: WorkbenchReport;
  source: { source: string };
  edited: { report: ShaderEditReport; model: ModelInfo };
  reset: { model: ModelInfo };
  token: TokenEvent;
  generated: GenerateResult;
  batchToken: BatchTokenEvent;
  batchStep: BatchStepEvent;
  batchGenerated: BatchGenerateResult;
  disposed: Empty;
  /** The request failed; ends the request like a final response does. */
  error: SerializedError;
}

export type RequestType = keyof RequestPayloads;
export type ResponseType = keyof ResponsePayloads;

export type WorkerRequest = { [K in RequestType]: { type: K; id: string; payload: RequestPayloads[K] } }[RequestType];
export type WorkerResponse = { [K in ResponseType]: { type: K; id: string; payload: ResponsePayloads[K] } }[ResponseType];

export type RequestOf<K extends RequestType> = Extract<WorkerRequest, { type: K }>;
export type ResponseOf<K extends ResponseType> = Extract<WorkerResponse, { type: K }>;

/** The response that ends each kind of request successfully (cancel has none). */
export interface FinalResponse {
  probe: 'probed';
  load: 'loaded';
  generate: 'generated';
  generateBatch: 'batchGenerated';
  reconfigure: 'reconfigured';
  profile: 'profiled';
  workbench: 'benched';
  shaderSource: 'source';
  editShader: 'edited';
  resetShader: 'reset';
  dispose: 'disposed';
}
