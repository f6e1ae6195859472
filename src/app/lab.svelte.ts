// The lab page's state: which model is loaded, the generation settings, the streamed output and
// its timings. Components read the fields and call the methods; only this class talks to the
// engine (a WorkerEngine, so the page stays responsive while the GPU works).
import type { AdapterReport, GenerateResult, ModelInfo } from '../engine/engine.ts';
import { CancelledError, DeviceLostError } from '../engine/errors.ts';
import { WorkerEngine } from '../worker/worker-engine.ts';
import { choicesFromQuery, type ModelChoice } from './models.ts';

/** Shortest time between two repaints of the streamed text and charts while generating. */
const uiIntervalMs = 50;

export type LabStatus = 'loading' | 'ready' | 'generating' | 'done' | 'error';

/** "ModelFormatError: http://…/models/missing.bin: HTTP 404" — the class name tells what kind of failure it was. */
export function describeError(error: unknown): string {
  if (error instanceof Error) return error.name && error.name !== 'Error' ? `${error.name}: ${error.message}` : error.message;
  return String(error);
}

function sum(values: readonly number[]): number {
  let total = 0;
  for (const v of values) total += v;
  return total;
}

export class Lab {
  #engine: WorkerEngine | null = null;
  #hasEngine = $state(false);
  #loadId = 0;
  #controller: AbortController | null = null;

  status = $state<LabStatus>('loading');
  /** What went wrong last (load or generation); null when all is well. */
  error = $state<string | null>(null);
  /** Latest loading message from the engine. */
  progress = $state('');

  /** Adapter capabilities: from a probe at start-up, then from the loaded engine. */
  adapter = $state.raw<AdapterReport | null>(null);
  adapterError = $state<string | null>(null);
  model = $state.raw<ModelInfo | null>(null);

  readonly choices: readonly ModelChoice[];
  modelId = $state('');

  prompt = $state('');
  maxTokens = $state(200);
  temperature = $state(0);
  seed = $state(42);

  /** Generated text so far (rendered as text, never HTML). */
  text = $state('');
  /** The last finished generation's whole token sequence (BOS, prompt, generated). */
  tokens = $state.raw<number[]>([]);
  /** Wall time of each decode step of the current/last generation, in ms (replaced wholesale). */
  stepMs = $state.raw<number[]>([]);
  /** Time from pressing Generate to the first streamed token, measured on the page. */
  ttftMs = $state<number | null>(null);
  result = $state.raw<GenerateResult | null>(null);

  /** Decode speed: the engine's figure once done; while running, from the step times so far (first step excluded: it includes prefill). */
  tokensPerSecond = $derived.by(() => {
    if (this.result) return this.result.decodeTokensPerSecond;
    const steps = this.stepMs.slice(1);
    const ms = sum(steps);
    return steps.length > 0 && ms > 0 ? (steps.length * 1000) / ms : null;
  });
  generatedCount = $derived(this.result ? this.result.generatedTokens : this.stepMs.length);
  busy = $derived(this.status === 'loading' || this.status === 'generating');
  canGenerate = $derived(this.#hasEngine && !this.busy);

  constructor(search = '') {
    const { choices, selected } = choicesFromQuery(search);
    this.choices = choices;
    this.modelId = selected;
  }

  /** Probes the adapter and loads the selected model. */
  start(): void {
    if (!('gpu' in navigator) || !navigator.gpu) {
      const message = 'This browser has no WebGPU (navigator.gpu is missing). Use a recent Chrome or Edge, or enable WebGPU in your browser, and open the page over http://localhost or https.';
      this.adapterError = message;
      this.#fail(message);
      return;
    }
    WorkerEngine.probeAdapter().then(
      (adapter) => {
        this.adapter ??= adapter;
      },
      (error: unknown) => {
        this.adapterError = describeError(error);
      },
    );
    void this.load(this.modelId);
  }

  /** Loads a model, replacing the current one. A newer call supersedes an older one still loading. */
  async load(modelId: string): Promise<void> {
    const choice = this.choices.find((c) => c.id === modelId);
    if (!choice) return this.#fail(`unknown model ${modelId}`);
    this.modelId = modelId;
    const loadId = ++this.#loadId;
    this.#controller?.abort();
    this.#dropEngine();
    this.model = null;
    this.error = null;
    this.status = 'loading';
    this.progress = `loading ${choice.entry}…`;
    try {
      const engine = await WorkerEngine.load({
        entry: choice.entry,
        tokenizer: choice.tokenizer,
        onProgress: (message) => {
          if (loadId === this.#loadId) this.progress = message;
        },
      });
      if (loadId !== this.#loadId) return engine.dispose();
      this.#engine = engine;
      this.#hasEngine = true;
      this.adapter = engine.adapter;
      this.adapterError = null;
      this.model = engine.model;
      this.progress = '';
      this.status = 'ready';
    } catch (error) {
      if (loadId !== this.#loadId) return;
      this.progress = '';
      this.#fail(`Could not load ${choice.entry}: ${describeError(error)}`);
    }
  }

  async generate(): Promise<void> {
    const engine = this.#engine;
    if (!engine || this.busy) return;
    const controller = new AbortController();
    this.#controller = controller;
    this.status = 'generating';
    this.error = null;
    this.text = '';
    this.tokens = [];
    this.stepMs = [];
    this.ttftMs = null;
    this.result = null;
    const started = performance.now();
    // Tokens are shown as they arrive, but the page repaints at most every `uiIntervalMs`: on a
    // fast GPU (or a software one, where painting competes with the kernels for the CPU) a repaint
    // per token would cost more than the token.
    let pendingText = '';
    let pendingSteps: number[] = [];
    let timer: ReturnType<typeof setTimeout> | null = null;
    const flush = () => {
      timer = null;
      if (engine !== this.#engine) return;
      this.text += pendingText;
      this.stepMs = [...this.stepMs, ...pendingSteps];
      pendingText = '';
      pendingSteps = [];
    };
    try {
      const result = await engine.generate(
        { prompt: this.prompt, maxTokens: this.maxTokens, temperature: this.temperature, seed: this.seed },
        (event) => {
          if (this.ttftMs === null) this.ttftMs = performance.now() - started;
          pendingText += event.text;
          pendingSteps.push(event.stepMs);
          if (this.stepMs.length === 0) flush(); // the first token at once
          else timer ??= setTimeout(flush, uiIntervalMs);
        },
        controller.signal,
      );
      if (timer !== null) clearTimeout(timer);
      flush();
      if (engine !== this.#engine) return;
      this.result = result;
      this.text = result.text;
      this.tokens = result.tokens;
      this.status = 'done';
    } catch (error) {
      if (timer !== null) clearTimeout(timer);
      flush();
      if (engine !== this.#engine) return;
      if (error instanceof CancelledError) {
        this.status = 'done';
        return;
      }
      if (error instanceof DeviceLostError) this.#dropEngine();
      this.#fail(`Generation failed: ${describeError(error)}`);
    } finally {
      if (this.#controller === controller) this.#controller = null;
    }
  }

  stop(): void {
    this.#controller?.abort();
  }

  dispose(): void {
    this.#loadId++;
    this.#controller?.abort();
    this.#dropEngine();
  }

  #dropEngine(): void {
    this.#engine?.dispose();
    this.#engine = null;
    this.#hasEngine = false;
  }

  #fail(message: string): void {
    this.error = message;
    this.status = 'error';
  }
}
