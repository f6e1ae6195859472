// The page's side of the engine worker. WorkerEngine implements the same Engine interface as the
// in-process engine; each call is a request with a uuid, and the worker's responses settle the
// matching promise. Errors come back as the engine's typed classes (rebuildError), so a bad model
// file arrives as a ModelFormatError that names the file.
import type {
  AdapterReport,
  BatchGenerateRequest,
  BatchGenerateResult,
  BatchStepEvent,
  BatchTokenEvent,
  Engine,
  GenerateRequest,
  GenerateResult,
  ModelInfo,
  TokenEvent,
} from '../engine/engine.ts';
import type { EngineSettings, ShaderEditReport, StepProfile, WorkbenchReport, WorkbenchRequest } from '../engine/telemetry.ts';
import { rebuildError } from '../engine/errors.ts';
import type { CacheLocation } from '../engine/hub/cache-store.ts';
import type { FinalResponse, RequestOf, ResponseOf, TuningEntries, WorkerRequest, WorkerResponse } from './protocol.ts';

/** The worker could not run at all (its script failed to load or threw outside any request). */
export class WorkerCrashedError extends Error {
  override name = 'WorkerCrashedError';
}

interface Pending {
  resolve: (response: WorkerResponse) => void;
  reject: (error: Error) => void;
  final: WorkerResponse['type'];
  onToken?: (event: TokenEvent) => void;
  onBatchToken?: (event: BatchTokenEvent) => void;
  onBatchStep?: (event: BatchStepEvent) => void;
  onProgress?: (message: string) => void;
}

/** The streaming callbacks a request may have. */
type Handlers = Pick<Pending, 'onToken' | 'onBatchToken' | 'onBatchStep' | 'onProgress'>;

let counter = 0;
function newId(): string {
  return globalThis.crypto?.randomUUID?.() ?? `request-${Date.now()}-${++counter}`;
}

function spawnWorker(): Worker {
  return new Worker(new URL('./engine.worker.ts', import.meta.url), { type: 'module', name: 'engine' });
}

/** One engine worker and the requests in flight to it. */
class WorkerClient {
  readonly #worker: Worker;
  readonly #pending = new Map<string, Pending>();
  #crashed: Error | null = null;

  constructor(worker: Worker) {
    this.#worker = worker;
    worker.addEventListener('message', (event: MessageEvent<WorkerResponse>) => this.#receive(event.data));
    worker.addEventListener('error', (event: ErrorEvent) => {
      event.preventDefault();
      const where = event.filename ? ` (${event.filename}:${event.lineno})` : '';
      this.#crash(new WorkerCrashedError(`the engine worker failed${where}: ${event.message || 'its script could not be loaded or threw'}`));
    });
    worker.addEventListener('messageerror', () => this.#crash(new WorkerCrashedError('the engine worker sent a message that could not be read')));
  }

  request<K extends keyof FinalResponse>(
    type: K,
    payload: RequestOf<K>['payload'],
    handlers: Handlers = {},
    id = newId(),
  ): Promise<ResponseOf<FinalResponse[K]>> {
    if (this.#crashed) return Promise.reject(this.#crashed);
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve: resolve as (response: WorkerResponse) => void, reject, final: finalOf[type], ...handlers });
      this.#post({ type, id, payload } as WorkerRequest);
    });
  }

  cancel(generateId: string): void {
    if (this.#pending.has(generateId)) this.#post({ type: 'cancel', id: newId(), payload: { generateId } });
  }

  terminate(): void {
    this.#worker.terminate();
    this.#crash(new WorkerCrashedError('the engine worker was terminated'));
  }

  #post(request: WorkerRequest): void {
    this.#worker.postMessage(request);
  }

  #receive(response: WorkerResponse): void {
    const pending = this.#pending.get(response.id);
    if (!pending) return; // a response to a request we no longer wait for
    switch (response.type) {
      case 'token':
        pending.onToken?.(response.payload);
        return;
      case 'batchToken':
        pending.onBatchToken?.(response.payload);
        return;
      case 'batchStep':
        pending.onBatchStep?.(response.payload);
        return;
      case 'progress':
        pending.onProgress?.(response.payload.message);
        return;
      case 'error':
        this.#pending.delete(response.id);
        pending.reject(rebuildError(response.payload));
        return;
      default:
        if (response.type !== pending.final) return;
        this.#pending.delete(response.id);
        pending.resolve(response);
    }
  }

  #crash(error: Error): void {
    this.#crashed ??= error;
    for (const pending of this.#pending.values()) pending.reject(error);
    this.#pending.clear();
  }
}

const finalOf: FinalResponse = {
  probe: 'probed',
  load: 'loaded',
  generate: 'generated',
  generateBatch: 'batchGenerated',
  reconfigure: 'reconfigured',
  profile: 'profiled',
  workbench: 'benched',
  shaderSource: 'source',
  editShader: 'edited',
  resetShader: 'reset',
  dispose: 'disposed',
};

/** Where the page keeps matvec tuning results (localStorage, when the browser allows it). */
export interface TuningKeeper {
  load(): TuningEntries;
  save(entries: TuningEntries): void;
}

export interface WorkerEngineOptions {
  /** Model path relative to the models URL: 'stories260K/stories260K.bin', a .gguf, or an HF folder. */
  entry: string;
  /** Tokenizer path relative to the models URL (e.g. 'stories260K/tok512.bin'). */
  tokenizer?: string;
  /** Where the models are served; default `/models/` on this page's origin. */
  modelsUrl?: string;
  /** Load from the browser's model cache instead of modelsUrl (entry and tokenizer relative to its baseUrl). */
  cache?: CacheLocation;
  onProgress?: (message: string) => void;
  settings?: Partial<EngineSettings>;
  tuning?: TuningKeeper;
}

export function defaultModelsUrl(): string {
  return new URL('models/', new URL(import.meta.env.BASE_URL, location.href)).href;
}

/** Engine running in a dedicated Web Worker. Create it with WorkerEngine.load(). */
export class WorkerEngine implements Engine {
  readonly adapter: AdapterReport;
  /** As of the last load, reconfiguration or kernel edit. */
  model: ModelInfo;
  readonly #client: WorkerClient;
  readonly #tuning: TuningKeeper | undefined;
  #disposed = false;

  private constructor(client: WorkerClient, adapter: AdapterReport, model: ModelInfo, tuning: TuningKeeper | undefined) {
    this.#client = client;
    this.adapter = adapter;
    this.model = model;
    this.#tuning = tuning;
  }

  /**
   * Starts a worker and loads the model in it. Rejects with the engine's typed error when the
   * model cannot be loaded (ModelFormatError names the file; GpuUnavailableError when there is no
   * WebGPU), and the worker is terminated.
   */
  static async load(options: WorkerEngineOptions): Promise<WorkerEngine> {
    const client = new WorkerClient(spawnWorker());
    const payload: RequestOf<'load'>['payload'] = { modelsUrl: options.modelsUrl ?? defaultModelsUrl(), entry: options.entry };
    if (options.tokenizer) payload.tokenizer = options.tokenizer;
    if (options.cache) payload.cache = options.cache;
    if (options.settings) payload.settings = options.settings;
    const stored = options.tuning?.load();
    if (stored) payload.tuning = stored;
    try {
      const { payload: loaded } = await client.request('load', payload, { onProgress: options.onProgress });
      options.tuning?.save(loaded.tuning);
      return new WorkerEngine(client, loaded.adapter, loaded.model, options.tuning);
    } catch (error) {
      client.terminate();
      throw error;
    }
  }

  /** Reports the adapter's capabilities from a short-lived worker, without loading a model. */
  static async probeAdapter(): Promise<AdapterReport> {
    const client = new WorkerClient(spawnWorker());
    try {
      return (await client.request('probe', {})).payload.adapter;
    } finally {
      client.terminate();
    }
  }

  async generate(request: GenerateRequest, onToken?: (event: TokenEvent) => void, signal?: AbortSignal): Promise<GenerateResult> {
    return (await this.#cancellable('generate', request, { onToken }, signal)).payload;
  }

  async generateBatch(
    request: BatchGenerateRequest,
    onEvent: { token?: (event: BatchTokenEvent) => void; step?: (event: BatchStepEvent) => void } = {},
    signal?: AbortSignal,
  ): Promise<BatchGenerateResult> {
    const stream = { tokens: onEvent.token !== undefined, steps: onEvent.step !== undefined };
    return (await this.#cancellable('generateBatch', { request, stream }, { onBatchToken: onEvent.token, onBatchStep: onEvent.step }, signal)).payload;
  }

  /** A generation request that `signal` cancels (the worker aborts it and answers with a CancelledError). */
  async #cancellable<K extends 'generate' | 'generateBatch'>(type: K, payload: RequestOf<K>['payload'], handlers: Handlers, signal: AbortSignal | undefined): Promise<ResponseOf<FinalResponse[K]>> {
    if (this.#disposed) throw new Error('this engine was disposed');
    const id = newId();
    const cancel = () => this.#client.cancel(id);
    signal?.addEventListener('abort', cancel, { once: true });
    try {
      const response = this.#client.request(type, payload, handlers, id);
      if (signal?.aborted) cancel();
      return await response;
    } finally {
      signal?.removeEventListener('abort', cancel);
    }
  }

  async reconfigure(settings: Partial<EngineSettings>): Promise<ModelInfo> {
    const { model, tuning } = (await this.#request('reconfigure', { settings })).payload;
    this.#tuning?.save(tuning);
    this.model = model;
    return model;
  }

  async profileStep(options: { position?: number; repetitions?: number } = {}): Promise<StepProfile> {
    return (await this.#request('profile', options)).payload;
  }

  async runWorkbench(request: WorkbenchRequest): Promise<WorkbenchReport> {
    return (await this.#request('workbench', request)).payload;
  }

  async shaderSource(family: string): Promise<string> {
    return (await this.#request('shaderSource', { family })).payload.source;
  }

  async editShader(family: string, source: string): Promise<ShaderEditReport> {
    const { report, model } = (await this.#request('editShader', { family, source })).payload;
    this.model = model;
    return report;
  }

  async resetShader(family: string): Promise<void> {
    this.model = (await this.#request('resetShader', { family })).payload.model;
  }

  #request<K extends keyof FinalResponse>(type: K, payload: RequestOf<K>['payload']): Promise<ResponseOf<FinalResponse[K]>> {
    if (this.#disposed) return Promise.reject(new Error('this engine was disposed'));
    return this.#client.request(type, payload);
  }

  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    // Let the worker free its GPU buffers, then make sure it is gone even if it does not answer.
    const client = this.#client;
    const timer = setTimeout(() => client.terminate(), 2_000);
    client
      .request('dispose', {})
      .catch(() => undefined)
      .finally(() => {
        clearTimeout(timer);
        client.terminate();
      });
  }
}
