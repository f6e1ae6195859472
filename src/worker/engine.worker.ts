// The engine's Web Worker: owns one in-process Engine (created from navigator.gpu and the models
// served over HTTP) and answers the page's requests (see protocol.ts). Generations (single or
// batched) run one at a time; a `cancel` aborts the one it names through its AbortController.
import type { Engine } from '../engine/engine.ts';
import { serializeError } from '../engine/errors.ts';
import { requestGpu } from '../engine/gpu/device.ts';
import { createEngine } from '../engine/index.ts';
import { urlSource } from '../engine/model/url-source.ts';
import { cacheSource } from '../engine/hub/cache-store.ts';
import type { RequestOf, TuningEntries, WorkerRequest, WorkerResponse } from './protocol.ts';
import type { WeightFormat } from '../engine/quant/formats.ts';
import type { MatvecVariantName } from '../engine/kernels/matvec.ts';

const scope = self as unknown as DedicatedWorkerGlobalScope;

let engine: Engine | null = null;
/** Matvec tuning results: seeded by the page at load, reported back so it can keep new ones. */
const tuning = new Map<string, string>();
const tuningStore = { get: (key: string) => tuning.get(key), set: (key: string, value: string) => void tuning.set(key, value) };
const tuningEntries = (): TuningEntries => Object.fromEntries(tuning);
/** Generations started and not yet finished, by request id. */
const running = new Map<string, AbortController>();
/** Requests that use the engine run in order, one at a time. */
let queue: Promise<void> = Promise.resolve();

function post(message: WorkerResponse): void {
  scope.postMessage(message);
}

function fail(id: string, error: unknown): void {
  post({ type: 'error', id, payload: serializeError(error) });
}

async function probe({ id }: RequestOf<'probe'>): Promise<void> {
  const gpu = await requestGpu(navigator.gpu);
  post({ type: 'probed', id, payload: { adapter: gpu.adapter } });
  gpu.device.destroy();
}

async function load({ id, payload }: RequestOf<'load'>): Promise<void> {
  engine?.dispose();
  engine = null;
  const files = payload.cache ? cacheSource(caches, payload.cache) : urlSource(payload.modelsUrl);
  for (const [key, value] of Object.entries(payload.tuning ?? {})) tuning.set(key, value);
  const settings = payload.settings ?? {};
  const created = await createEngine({
    gpu: navigator.gpu,
    files,
    entry: payload.entry,
    tokenizer: payload.tokenizer ? { files, path: payload.tokenizer } : undefined,
    onProgress: (message: string) => post({ type: 'progress', id, payload: { message } }),
    weightFormat: settings.weightFormat as WeightFormat | undefined,
    matvecVariant: settings.matvecVariant && settings.matvecVariant !== 'auto' ? (settings.matvecVariant as MatvecVariantName) : undefined,
    sampler: settings.sampler,
    speculative: settings.speculative,
    draftTokens: settings.draftTokens,
    kvCache: settings.kvCache,
    pageSize: settings.pageSize,
    prefixCache: settings.prefixCache,
    attention: settings.attention,
    tuningStore,
  });
  engine = created;
  post({ type: 'loaded', id, payload: { adapter: created.adapter, model: created.model, tuning: tuningEntries() } });
}

function loaded(): Engine {
  if (!engine) throw new Error('no model is loaded: send a load request first');
  return engine;
}

async function generate({ id, payload }: RequestOf<'generate'>, controller: AbortController): Promise<void> {
  const result = await loaded().generate(payload, (event) => post({ type: 'token', id, payload: event }), controller.signal);
  post({ type: 'generated', id, payload: result });
}

async function generateBatch({ id, payload }: RequestOf<'generateBatch'>, controller: AbortController): Promise<void> {
  const { request, stream } = payload;
  const result = await loaded().generateBatch(
    request,
    {
      token: stream.tokens ? (event) => post({ type: 'batchToken', id, payload: event }) : undefined,
      step: stream.steps ? (event) => post({ type: 'batchStep', id, payload: event }) : undefined,
    },
    controller.signal,
  );
  post({ type: 'batchGenerated', id, payload: result });
}

/** Runs a generation (single or batched) that a `cancel` naming its request id can abort. */
function cancellable(id: string, task: (controller: AbortController) => Promise<void>): void {
  const controller = new AbortController();
  running.set(id, controller);
  enqueue(id, () => task(controller).finally(() => running.delete(id)));
}

/** The requests that inspect or change the loaded engine, each ending in one response. */
async function labRequest(request: RequestOf<'reconfigure' | 'profile' | 'workbench' | 'shaderSource' | 'editShader' | 'resetShader'>): Promise<WorkerResponse> {
  const e = loaded();
  const { id } = request;
  switch (request.type) {
    case 'reconfigure':
      return { type: 'reconfigured', id, payload: { model: await e.reconfigure(request.payload.settings), tuning: tuningEntries() } };
    case 'profile':
      return { type: 'profiled', id, payload: await e.profileStep(request.payload) };
    case 'workbench':
      return { type: 'benched', id, payload: await e.runWorkbench(request.payload) };
    case 'shaderSource':
      return { type: 'source', id, payload: { source: await e.shaderSource(request.payload.family) } };
    case 'editShader':
      return { type: 'edited', id, payload: { report: await e.editShader(request.payload.family, request.payload.source), model: e.model } };
    case 'resetShader':
      await e.resetShader(request.payload.family);
      return { type: 'reset', id, payload: { model: e.model } };
  }
}

function dispose({ id }: RequestOf<'dispose'>): void {
  for (const controller of running.values()) controller.abort();
  engine?.dispose();
  engine = null;
  post({ type: 'disposed', id, payload: {} });
  scope.close();
}

function enqueue(id: string, task: () => Promise<void>): void {
  queue = queue.then(task).catch((error: unknown) => fail(id, error));
}

scope.addEventListener('message', (event: MessageEvent<WorkerRequest>) => {
  const request = event.data;
  switch (request.type) {
    case 'probe':
      probe(request).catch((error: unknown) => fail(request.id, error));
      break;
    case 'load':
      enqueue(request.id, () => load(request));
      break;
    case 'generate':
      cancellable(request.id, (controller) => generate(request, controller));
      break;
    case 'generateBatch':
      cancellable(request.id, (controller) => generateBatch(request, controller));
      break;
    case 'reconfigure':
    case 'profile':
    case 'workbench':
    case 'shaderSource':
    case 'editShader':
    case 'resetShader':
      enqueue(request.id, async () => post(await labRequest(request)));
      break;
    case 'cancel':
      running.get(request.payload.generateId)?.abort();
      break;
    case 'dispose':
      // Abort at once, then free the engine after whatever is running has stopped.
      for (const controller of running.values()) controller.abort();
      enqueue(request.id, async () => dispose(request));
      break;
    default: {
      const unknown: never = request;
      throw new Error(`unknown request ${JSON.stringify(unknown)}`);
    }
  }
});
