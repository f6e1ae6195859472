// The engine's Web Worker: owns one in-process Engine (created from navigator.gpu and the models
// served over HTTP) and answers the page's requests (see protocol.ts). Generations run one at a
// time; a `cancel` aborts the one it names through its AbortController.
import type { Engine } from '../engine/engine.ts';
import { serializeError } from '../engine/errors.ts';
import { requestGpu } from '../engine/gpu/device.ts';
import { createEngine } from '../engine/index.ts';
import { urlSource } from '../engine/model/url-source.ts';
import type { RequestOf, WorkerRequest, WorkerResponse } from './protocol.ts';

const scope = self as unknown as DedicatedWorkerGlobalScope;

let engine: Engine | null = null;
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
  const files = urlSource(payload.modelsUrl);
  const created = await createEngine({
    gpu: navigator.gpu,
    files,
    entry: payload.entry,
    tokenizer: payload.tokenizer ? { files, path: payload.tokenizer } : undefined,
    onProgress: (message: string) => post({ type: 'progress', id, payload: { message } }),
  });
  engine = created;
  post({ type: 'loaded', id, payload: { adapter: created.adapter, model: created.model } });
}

async function generate({ id, payload }: RequestOf<'generate'>, controller: AbortController): Promise<void> {
  if (!engine) throw new Error('no model is loaded: send a load request first');
  const result = await engine.generate(payload, (event) => post({ type: 'token', id, payload: event }), controller.signal);
  post({ type: 'generated', id, payload: result });
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
    case 'generate': {
      const controller = new AbortController();
      running.set(request.id, controller);
      enqueue(request.id, () => generate(request, controller).finally(() => running.delete(request.id)));
      break;
    }
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
