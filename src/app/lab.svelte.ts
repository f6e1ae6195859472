// The lab page's state: which model is loaded, the switches, the generation settings, the streamed
// output and everything measured about it (runs, profiles, sweeps, workbench). Components read the
// fields and call the methods; only this class talks to the engine (a WorkerEngine, so the page
// stays responsive while the GPU works). The same fields can be filled from a recorded LabTrace
// (replay), so every panel also renders without a GPU.
import type { AdapterReport, GenerateResult, ModelInfo } from '../engine/engine.ts';
import { CancelledError, DeviceLostError, GpuOperationError } from '../engine/errors.ts';
import type { StoredModel } from '../engine/hub/cache-store.ts';
import type { LocalFile } from '../engine/hub/local-files.ts';
import type { ModelPlan } from '../engine/hub/plan.ts';
import type { EngineSettings, SettingChoices, ShaderEditReport, StepDistribution, StepProfile, WorkbenchReport } from '../engine/telemetry.ts';
import { WorkerEngine, type TuningKeeper } from '../worker/worker-engine.ts';
import { HubModels } from './hub.svelte.ts';
import { choicesFromQuery, isStoredModelId, storedChoice, type ModelChoice } from './models.ts';
import { settingsLabel, tpotMs } from './run-stats.ts';
import { describeChanges, settingChange, type FlipMeasurement } from './switches.ts';
import { fullerStep, mixedBatch, pagedStep, sweepBatch, sweepBatchSizes, sweepPoint, warmUpBatch } from './batch-runs.ts';
import { defaultDollarsPerHour, type ReferenceGpuKey } from './reference-figures.ts';
import { formatUrlState, parseUrlState, urlDefaults } from './url-state.ts';
import type { AbComparison, BatchSweep, BatchSweepPoint, KvSnapshot, LabTrace, PagedStep, PromptSweepPoint, RunRecord, SwitchMark } from './trace.ts';

/** Shortest time between two repaints of the streamed text and charts while generating. */
const uiIntervalMs = 50;
/** Candidates per step the sampling panel shows when inspection is on. */
const inspectCandidates = 20;
/** Steps whose distributions are kept for the sampling panel. */
const keptDistributions = 256;

export type LabStatus = 'loading' | 'ready' | 'generating' | 'busy' | 'done' | 'error';

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

/** Matvec tuning results kept in localStorage, so the next visit skips the tuning run. */
const tuningKeeper: TuningKeeper = {
  load() {
    try {
      return JSON.parse(localStorage.getItem('lab:matvec-tuning') ?? '{}') as Record<string, string>;
    } catch {
      return {};
    }
  },
  save(entries) {
    try {
      localStorage.setItem('lab:matvec-tuning', JSON.stringify(entries));
    } catch {
      // Storage full or blocked (private mode): tuning simply runs again next time.
    }
  },
};

export class Lab {
  #engine: WorkerEngine | null = null;
  #hasEngine = $state(false);
  #loadId = 0;
  #controller: AbortController | null = null;
  #runId = 0;

  status = $state<LabStatus>('loading');
  /** What went wrong last (load, generation, a switch); null when all is well. */
  error = $state<string | null>(null);
  /** Latest loading message from the engine. */
  progress = $state('');
  /** True while the panels show a recorded trace instead of a live engine. */
  replaying = $state(false);
  /** When the replayed trace was recorded. */
  replayRecordedAt = $state<string | null>(null);

  /** Adapter capabilities: from a probe at start-up, then from the loaded engine. */
  adapter = $state.raw<AdapterReport | null>(null);
  adapterError = $state<string | null>(null);
  model = $state.raw<ModelInfo | null>(null);

  /** The served models, then the stored ones the page has loaded (replaced wholesale). */
  choices = $state.raw<readonly ModelChoice[]>([]);
  /** Downloads from the Hub and the models kept in the browser. */
  readonly hub: HubModels;
  /**
   * Set when the GPU failed under the engine (device lost, out of memory) and said how: the engine
   * is gone, the generated text is kept, and restart() loads the model again (from the cache when
   * it was downloaded).
   */
  gpuFailure = $state<string | null>(null);
  modelId = $state('');
  /** Switches asked for (applied at load, and by applySetting on the loaded model). */
  settings = $state.raw<EngineSettings>({ ...urlDefaults.settings });
  /** The switch being applied, while the engine rebuilds. */
  pendingSwitch = $state<string | null>(null);
  flipBefore = $state.raw<FlipMeasurement | null>(null);
  flipAfter = $state.raw<FlipMeasurement | null>(null);

  prompt = $state('');
  maxTokens = $state(200);
  temperature = $state(0);
  seed = $state(42);
  /** The request's cuts (top-k 0, top-p 1, min-p 0: off); with one on, an inspected step carries the kept set. */
  topK = $state(0);
  topP = $state(1);
  minP = $state(0);
  /** The request's constraint: '' (none), 'json' or 'regex:PATTERN'. */
  constraint = $state('');
  /** Read each step's distribution back for the sampling panel (slows decoding). */
  inspect = $state(false);
  /** Wrap the prompt in the model's chat template (instruct models only). */
  chat = $state(false);

  /** Generated text so far (rendered as text, never HTML). */
  text = $state('');
  /** The streamed tokens of the current/last generation with their step times. */
  streamed = $state.raw<Array<{ text: string; stepMs: number }>>([]);
  /** The last finished generation's whole token sequence (BOS, prompt, generated). */
  tokens = $state.raw<number[]>([]);
  /** Wall time of each decode step of the current/last generation, in ms (replaced wholesale). */
  stepMs = $state.raw<number[]>([]);
  /** Time from pressing Generate to the first streamed token, measured on the page. */
  ttftMs = $state<number | null>(null);
  result = $state.raw<GenerateResult | null>(null);
  distributions = $state.raw<StepDistribution[]>([]);

  /** Every finished generation of this session, in order. */
  runs = $state.raw<RunRecord[]>([]);
  marks = $state.raw<SwitchMark[]>([]);
  profile = $state.raw<StepProfile | null>(null);
  sweep = $state.raw<PromptSweepPoint[]>([]);
  ab = $state.raw<AbComparison | null>(null);
  workbench = $state.raw<WorkbenchReport | null>(null);
  workbenchRequest = $state.raw<{ format: string; rows: number; cols: number }>({ format: 'q4_0', rows: 288, cols: 288 });
  /** WGSL of the matvec family the model runs now. */
  wgslSource = $state('');
  editReport = $state.raw<ShaderEditReport | null>(null);
  wgslEdited = $state(false);

  /** The batching sweep's inputs: the largest batch size it runs and the tokens each copy generates. */
  batchOptions = $state.raw<{ maxBatch: number; maxTokens: number }>({ maxBatch: 8, maxTokens: 24 });
  batchSweep = $state.raw<BatchSweep | null>(null);
  /** KV layout of the mixed batch the KV-cache panel watches (batched runs default to paged). */
  kvLayout = $state<'paged' | 'contiguous'>('paged');
  kvSnapshot = $state.raw<KvSnapshot | null>(null);
  /** Which batched run is in flight (Cancel stops it). */
  batchRun = $state<'sweep' | 'mixed' | null>(null);

  /** Decode speed: the engine's figure once done; while running, from the step times so far (first step excluded: it includes prefill). */
  tokensPerSecond = $derived.by(() => {
    if (this.result) return this.result.decodeTokensPerSecond;
    const steps = this.stepMs.slice(1);
    const ms = sum(steps);
    return steps.length > 0 && ms > 0 ? (steps.length * 1000) / ms : null;
  });
  generatedCount = $derived(this.result ? this.result.generatedTokens : this.stepMs.length);
  busy = $derived(this.status === 'loading' || this.status === 'generating' || this.status === 'busy');
  canGenerate = $derived(this.#hasEngine && !this.busy && !this.replaying);
  /** The settings the engine actually runs (the model's, once loaded). */
  activeSettings = $derived(this.model?.settings ?? this.settings);
  /** Distributions come from the single-sequence model's logits: a paged generation has none to read. */
  inspectAvailable = $derived(this.activeSettings.kvCache === 'contiguous');

  /** The cuts and the constraint as the request carries them: the options that are off are left out. */
  requestCuts = $derived({
    ...(this.topK !== 0 && { topK: this.topK }),
    ...(this.topP !== 1 && { topP: this.topP }),
    ...(this.minP !== 0 && { minP: this.minP }),
    ...(this.constraint !== '' && { constraint: this.constraint }),
  });

  /** Panels shown, in order (all of them unless the URL names some). */
  panels = $state.raw<string[] | null>(null);
  presenterActive = $state(false);
  presenterStep = $state(0);
  /** A recorded trace to replay instead of loading a model (path or URL). */
  readonly traceUrl: string | null;
  /** A tokenizer the URL named for a model from the URL (kept when the address bar is rewritten). */
  readonly tokenizerParam: string | undefined;
  /** The economics panel's inputs. */
  dollarsPerHour = $state<number>(defaultDollarsPerHour);
  referenceGpu = $state<ReferenceGpuKey>('h100-sxm');

  constructor(search = '') {
    const { choices, selected } = choicesFromQuery(search);
    this.choices = choices;
    this.hub = new HubModels(search);
    this.modelId = selected;
    const url = parseUrlState(search);
    this.settings = { ...urlDefaults.settings, ...url.settings };
    this.prompt = url.prompt ?? urlDefaults.prompt;
    this.maxTokens = url.maxTokens ?? urlDefaults.maxTokens;
    this.temperature = url.temperature ?? urlDefaults.temperature;
    this.seed = url.seed ?? urlDefaults.seed;
    this.topK = url.topK ?? urlDefaults.topK;
    this.topP = url.topP ?? urlDefaults.topP;
    this.minP = url.minP ?? urlDefaults.minP;
    this.constraint = url.constraint ?? urlDefaults.constraint;
    this.panels = url.panels ?? null;
    this.presenterActive = url.presenter ?? false;
    this.presenterStep = url.step ?? 0;
    this.traceUrl = url.trace ?? null;
    this.tokenizerParam = url.tokenizer;
  }

  /** The configuration as a query string (kept in the address bar, so a link reproduces it). */
  urlQuery = $derived.by(() =>
    formatUrlState({
      model: this.modelId,
      tokenizer: this.tokenizerParam,
      settings: this.activeSettings,
      prompt: this.prompt,
      maxTokens: this.maxTokens,
      temperature: this.temperature,
      seed: this.seed,
      topK: this.topK,
      topP: this.topP,
      minP: this.minP,
      constraint: this.constraint,
      panels: this.panels ?? undefined,
      presenter: this.presenterActive,
      step: this.presenterStep,
      trace: this.replaying ? (this.traceUrl ?? undefined) : undefined,
    }),
  );

  /** Probes the adapter and loads the selected model (or replays the trace the URL names). */
  start(): void {
    if (this.traceUrl) {
      void this.replayFrom(this.traceUrl);
      return;
    }
    if (!('gpu' in navigator) || !navigator.gpu) {
      const message = 'This browser has no WebGPU (navigator.gpu is missing). Use a recent Chrome or Edge, or enable WebGPU in your browser, and open the page over http://localhost or https. Recorded sessions can still be replayed.';
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
    void this.hub.refresh();
    if (isStoredModelId(this.modelId) && !this.choices.some((c) => c.id === this.modelId)) void this.#loadStoredId(this.modelId);
    else void this.load(this.modelId);
  }

  /** A stored model named by the URL: loaded from the cache, with no network needed. */
  async #loadStoredId(id: string): Promise<void> {
    const stored = await this.hub.find(id);
    if (!stored) return this.#fail(`${id} is not in this browser's model cache (it was deleted, or downloaded in another browser): download it again from the Models panel.`);
    await this.useStored(stored);
  }

  /** Adds a stored model to the picker and loads it from the cache. */
  async useStored(stored: StoredModel): Promise<void> {
    const choice = storedChoice(stored);
    this.choices = [...this.choices.filter((c) => c.id !== choice.id), choice];
    await this.load(choice.id);
  }

  /** Downloads a model (catalog plan) unless the preflight refuses it, then loads it. */
  async fetchAndLoad(plan: ModelPlan): Promise<void> {
    const stored = await this.hub.fetchPlan(plan, this.adapter);
    if (stored) await this.useStored(stored);
  }

  /** Downloads what a typed-in repo id or URL names, then loads it. */
  async fetchReferenceAndLoad(text: string): Promise<void> {
    const stored = await this.hub.fetchReference(text, this.adapter);
    if (stored) await this.useStored(stored);
  }

  /** Keeps dropped model files in the cache and loads them. */
  async addLocalFilesAndLoad(files: LocalFile[]): Promise<void> {
    const stored = await this.hub.addLocalFiles(files);
    if (stored) await this.useStored(stored);
  }

  /** A new engine for the current model after a GPU failure; the generated text stays. */
  restart(): Promise<void> {
    return this.load(this.modelId);
  }

  /** What to tell the user when the GPU failed under the engine (null for any other error). */
  #gpuFailureOf(error: unknown, when: string): string | null {
    if (error instanceof DeviceLostError) return `The GPU device was lost ${when} (${error.message}).`;
    if (error instanceof GpuOperationError && /out of GPU memory/i.test(error.message)) {
      return `The GPU ran out of memory ${when} (${error.message}). A smaller weight format (q4_0, q8_0) or a smaller model needs less.`;
    }
    return null;
  }

  /** Loads a model, replacing the current one. A newer call supersedes an older one still loading. */
  async load(modelId: string): Promise<void> {
    const choice = this.choices.find((c) => c.id === modelId);
    if (!choice) return this.#fail(`unknown model ${modelId}`);
    this.modelId = modelId;
    const loadId = ++this.#loadId;
    this.#controller?.abort();
    this.#dropEngine();
    this.replaying = false;
    this.replayRecordedAt = null;
    this.model = null;
    this.error = null;
    this.status = 'loading';
    this.progress = `loading ${choice.entry}…`;
    try {
      const engine = await WorkerEngine.load({
        entry: choice.entry,
        tokenizer: choice.tokenizer,
        cache: choice.cache,
        settings: this.settings,
        tuning: tuningKeeper,
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
      this.settings = engine.model.settings;
      this.progress = '';
      this.gpuFailure = null;
      this.status = 'ready';
      void this.#refreshSource();
    } catch (error) {
      if (loadId !== this.#loadId) return;
      this.progress = '';
      this.gpuFailure = this.#gpuFailureOf(error, `while loading ${choice.label}`);
      this.#fail(`Could not load ${choice.entry}: ${describeError(error)}`);
    }
  }

  async generate(): Promise<RunRecord | null> {
    const engine = this.#engine;
    if (!engine || this.busy || this.replaying) return null;
    const controller = new AbortController();
    this.#controller = controller;
    this.status = 'generating';
    this.error = null;
    this.text = '';
    this.streamed = [];
    this.tokens = [];
    this.stepMs = [];
    this.ttftMs = null;
    this.result = null;
    this.distributions = [];
    const settings = engine.model.settings;
    const record: RunRecord = { id: ++this.#runId, label: settingsLabel(settings, engine.model), settings, bytesPerToken: engine.model.memory.bytesPerToken, prompt: this.prompt, stepMs: [], ttftMs: null, result: null };
    const started = performance.now();
    // Tokens are shown as they arrive, but the page repaints at most every `uiIntervalMs`: on a
    // fast GPU (or a software one, where painting competes with the kernels for the CPU) a repaint
    // per token would cost more than the token.
    let pending: Array<{ text: string; stepMs: number }> = [];
    let pendingDistributions: StepDistribution[] = [];
    let timer: ReturnType<typeof setTimeout> | null = null;
    const flush = () => {
      timer = null;
      if (engine !== this.#engine) return;
      this.text += pending.map((t) => t.text).join('');
      this.streamed = [...this.streamed, ...pending];
      this.stepMs = [...this.stepMs, ...pending.map((t) => t.stepMs)];
      if (pendingDistributions.length > 0) this.distributions = [...this.distributions, ...pendingDistributions].slice(-keptDistributions);
      pending = [];
      pendingDistributions = [];
    };
    try {
      const result = await engine.generate(
        {
          prompt: this.prompt,
          maxTokens: this.maxTokens,
          temperature: this.temperature,
          seed: this.seed,
          ...this.requestCuts,
          inspect: this.inspect && this.inspectAvailable ? inspectCandidates : 0,
          chat: this.chat && engine.model.chatTemplate,
        },
        (event) => {
          if (this.ttftMs === null) this.ttftMs = performance.now() - started;
          pending.push({ text: event.text, stepMs: event.stepMs });
          if (event.distribution) pendingDistributions.push(event.distribution);
          if (this.stepMs.length === 0) flush(); // the first token at once
          else timer ??= setTimeout(flush, uiIntervalMs);
        },
        controller.signal,
      );
      if (timer !== null) clearTimeout(timer);
      flush();
      if (engine !== this.#engine) return null;
      this.result = result;
      this.text = result.text;
      this.tokens = result.tokens;
      this.status = 'done';
      this.#finishRun({ ...record, stepMs: this.stepMs, ttftMs: this.ttftMs, result });
    } catch (error) {
      if (timer !== null) clearTimeout(timer);
      flush();
      if (engine !== this.#engine) return null;
      if (error instanceof CancelledError) {
        this.status = 'done';
        return null;
      }
      const failure = this.#gpuFailureOf(error, 'while generating');
      if (failure) {
        this.#dropEngine();
        this.gpuFailure = failure;
      }
      this.#fail(`Generation failed: ${describeError(error)}`);
      return null;
    } finally {
      if (this.#controller === controller) this.#controller = null;
    }
    return this.runs[this.runs.length - 1];
  }

  #finishRun(record: RunRecord): void {
    this.runs = [...this.runs, record];
    if (this.flipBefore && !this.flipAfter && this.model && this.pendingSwitch === null) {
      this.flipAfter = this.#snapshot(record.label, record.result?.decodeTokensPerSecond ?? null);
    }
  }

  #snapshot(label: string, tokensPerSecond: number | null): FlipMeasurement {
    const model = this.model!;
    return { label, tokensPerSecond, weightBytes: model.weightBytes, bytesPerToken: model.memory.bytesPerToken };
  }

  stop(): void {
    this.#controller?.abort();
  }

  /** Flips one switch on the running model (a generation in progress is stopped first); `value` is the switch's text form ("16", "true"). */
  async applySetting(key: keyof EngineSettings, value: string): Promise<void> {
    let change: Partial<EngineSettings>;
    try {
      change = settingChange(key, value);
    } catch (error) {
      this.error = describeError(error);
      return;
    }
    const engine = this.#engine;
    if (!engine || this.replaying) {
      // No engine (a failed load, or a replay): the next load starts with the new switch.
      this.settings = { ...this.settings, ...change };
      if (!this.replaying && this.status !== 'loading') await this.load(this.modelId);
      return;
    }
    if (this.status === 'generating') {
      this.stop();
      while (this.status === 'generating') await new Promise((resolve) => setTimeout(resolve, 10));
    }
    if (this.busy) return;
    const before = engine.model.settings;
    if (before[key] === change[key]) return;
    const last = this.runs[this.runs.length - 1];
    this.flipBefore = this.#snapshot(settingsLabel(engine.model.settings, engine.model), last?.result?.decodeTokensPerSecond ?? null);
    this.flipAfter = null;
    await this.#withEngine(`applying ${key} = ${value}`, key, async () => {
      const model = await engine.reconfigure(change);
      this.model = model;
      this.settings = model.settings;
      // The engine may change a dependent switch too (paging puts the sampler on the GPU): the mark names every change.
      const label = describeChanges(before, model.settings);
      if (label) this.marks = [...this.marks, { beforeRun: this.runs.length, label }];
      void this.#refreshSource();
    });
  }

  /** Per-kernel GPU times of one decode step. */
  async profileStep(): Promise<void> {
    const engine = this.#engine;
    if (!engine) return;
    await this.#withEngine('profiling a step', null, async () => {
      this.profile = await engine.profileStep({});
    });
  }

  /** TTFT and TPOT for prompts of growing length (greedy, 16 new tokens each). */
  async sweepPromptLengths(): Promise<void> {
    const engine = this.#engine;
    if (!engine || this.busy) return;
    const context = engine.model.memory.contextLength;
    const words = 'Once upon a time there was a little girl who liked to play in the park with her friends and her dog';
    const lengths = [1, 4, 16, 32, 64, 128, 256, 512, 1024].filter((n) => n < context - 20);
    this.sweep = [];
    await this.#withEngine('sweeping prompt lengths', null, async () => {
      for (const n of lengths) {
        const prompt = Array.from({ length: n }, (_, i) => words.split(' ')[i % 21]).join(' ');
        const result = await engine.generate({ prompt: n === 1 ? '' : prompt, maxTokens: 16, temperature: 0, seed: 0 });
        if (result.promptTokens + 16 > context) break;
        const tpot = tpotMs(result);
        if (tpot !== null) this.sweep = [...this.sweep, { promptTokens: result.promptTokens, ttftMs: result.prefillMs, tpotMs: tpot }];
      }
    });
  }

  /**
   * Runs the prompt under the settings before the last flip (A) and the current ones (B), and keeps
   * both side by side. Ends with the engine on B.
   */
  async recordAb(): Promise<void> {
    const engine = this.#engine;
    const before = this.flipBefore && this.runs.find((r) => r.label === this.flipBefore!.label);
    if (!engine || this.busy || !before) return;
    const b = engine.model.settings;
    const a = before.settings;
    const runWith = async (settings: EngineSettings): Promise<RunRecord | null> => {
      this.model = await engine.reconfigure(settings);
      this.settings = this.model.settings;
      return this.generate();
    };
    try {
      const runA = await runWith(a);
      const runB = runA && (await runWith(b));
      if (runA && runB) this.ab = { prompt: this.prompt, a: runA, b: runB };
    } catch (error) {
      this.#fail(`A/B recording failed: ${describeError(error)}`);
    }
  }

  async runWorkbench(request: { format: string; rows: number; cols: number }): Promise<void> {
    const engine = this.#engine;
    if (!engine) return;
    this.workbenchRequest = request;
    await this.#withEngine('running the workbench', null, async () => {
      this.workbench = await engine.runWorkbench({ op: 'matvec', ...request });
    });
  }

  /**
   * The batching sweep: the prompt as N copies (seeds seed, seed + 1, …) served together at each
   * batch size up to batchOptions.maxBatch, one point per size. Cancel keeps the points so far.
   */
  async sweepBatchSizes(): Promise<void> {
    const { maxBatch, maxTokens } = this.batchOptions;
    await this.#batchTask('sweeping batch sizes', 'sweep', async (engine, signal) => {
      const generation = { prompt: this.prompt, maxTokens, temperature: this.temperature, seed: this.seed, chat: this.chat && engine.model.chatTemplate };
      const settings = engine.model.settings;
      let points: BatchSweepPoint[] = [];
      this.batchSweep = { prompt: generation.prompt, maxTokens, settings, points };
      const sizes = sweepBatchSizes.filter((b) => b <= maxBatch);
      this.progress = 'sweeping batch sizes: warming up…';
      await engine.generateBatch(warmUpBatch(sizes[sizes.length - 1], generation, settings), {}, signal);
      if (engine !== this.#engine || signal.aborted) return;
      for (const batchSize of sizes) {
        this.progress = `sweeping batch sizes: ${batchSize} ${batchSize === 1 ? 'sequence' : 'sequences'}…`;
        const result = await engine.generateBatch(sweepBatch(batchSize, generation, settings), {}, signal);
        // A cancelled batch returns what its sequences had: not a measurement of this batch size.
        if (engine !== this.#engine || signal.aborted) return;
        points = [...points, sweepPoint(batchSize, result)];
        this.batchSweep = { prompt: generation.prompt, maxTokens, settings, points };
      }
    });
  }

  /**
   * The mixed batch the KV-cache panel watches: the page pool is shown as the steps report it
   * (about every 100 ms), and once the batch has finished, at the step that reserved the most.
   */
  async runMixedBatch(): Promise<void> {
    const layout = this.kvLayout;
    await this.#batchTask('running a mixed batch', 'mixed', async (engine, signal) => {
      const request = mixedBatch(engine.model.settings, layout, this.temperature, this.seed);
      const requests = request.requests.map((r) => ({ prompt: r.prompt, maxTokens: r.maxTokens }));
      const maxBatch = request.maxBatch ?? requests.length;
      let fullest: PagedStep | null = null;
      this.kvSnapshot = null;
      const result = await engine.generateBatch(
        request,
        {
          step: (event) => {
            const step = pagedStep(event);
            if (!step || engine !== this.#engine) return;
            fullest = fullerStep(fullest, step);
            this.kvSnapshot = { requests, maxBatch, step, state: 'running', prefix: null };
          },
        },
        signal,
      );
      if (engine !== this.#engine || !fullest) return;
      this.kvSnapshot = { requests, maxBatch, step: fullest, state: signal.aborted ? 'cancelled' : 'finished', prefix: result.prefix };
    });
  }

  /** Runs a batched generation with the page marked busy; stop() cancels it, keeping what it recorded so far. */
  async #batchTask(what: string, run: 'sweep' | 'mixed', task: (engine: WorkerEngine, signal: AbortSignal) => Promise<void>): Promise<void> {
    const engine = this.#engine;
    if (!engine || this.busy || this.replaying) return;
    const controller = new AbortController();
    this.#controller = controller;
    this.batchRun = run;
    try {
      await this.#withEngine(what, null, async () => {
        try {
          await task(engine, controller.signal);
        } catch (error) {
          if (!(error instanceof CancelledError)) throw error;
        }
      });
    } finally {
      if (this.#controller === controller) this.#controller = null;
      this.batchRun = null;
    }
  }

  /** Checks edited matvec WGSL; the model switches to it only if it compiles and matches the reference. */
  async submitEdit(source: string): Promise<void> {
    const engine = this.#engine;
    if (!engine) return;
    await this.#withEngine('checking the edited kernel', null, async () => {
      this.editReport = await engine.editShader('matvec', source);
      this.model = engine.model;
      if (this.editReport.accepted) {
        this.wgslSource = source;
        this.wgslEdited = true;
      }
    });
  }

  async resetEdit(): Promise<void> {
    const engine = this.#engine;
    if (!engine) return;
    await this.#withEngine('restoring the shipped kernel', null, async () => {
      await engine.resetShader('matvec');
      this.model = engine.model;
      this.editReport = null;
      this.wgslEdited = false;
      await this.#refreshSource();
    });
  }

  async #refreshSource(): Promise<void> {
    const engine = this.#engine;
    if (!engine) return;
    try {
      this.wgslSource = await engine.shaderSource('matvec');
    } catch (error) {
      this.error = `Could not read the kernel source: ${describeError(error)}`;
    }
  }

  /** Runs an engine task with the page marked busy; failures are shown and the engine keeps its state. */
  async #withEngine(what: string, pendingSwitch: string | null, task: () => Promise<void>): Promise<void> {
    if (this.busy) return;
    this.status = 'busy';
    this.pendingSwitch = pendingSwitch;
    this.progress = `${what}…`;
    this.error = null;
    try {
      await task();
      this.status = this.result ? 'done' : 'ready';
    } catch (error) {
      if (error instanceof DeviceLostError) {
        this.#dropEngine();
        this.gpuFailure = this.#gpuFailureOf(error, `while ${what}`);
      }
      this.#fail(`${what[0].toUpperCase()}${what.slice(1)} failed: ${describeError(error)}`);
      if (this.#engine) this.status = 'ready';
    } finally {
      this.pendingSwitch = null;
      this.progress = '';
    }
  }

  /** Everything measured so far, as a LabTrace (exported as JSON; replayable). */
  trace(): LabTrace | null {
    if (!this.adapter || !this.model) return null;
    return {
      version: 1,
      recordedAt: new Date().toISOString(),
      adapter: this.adapter,
      model: this.model,
      runs: this.runs,
      marks: this.marks,
      profile: this.profile,
      sweep: this.sweep,
      distributions: this.distributions,
      workbench: this.workbench,
      ab: this.ab,
      batching: this.batchSweep,
      kv: this.kvSnapshot,
    };
  }

  /** Shows a recorded trace in every panel instead of the live engine (for weak GPUs in a talk). */
  replay(trace: LabTrace): void {
    if (trace.version !== 1 || !trace.adapter || !trace.model) throw new Error('not a lab trace (version 1 with adapter and model)');
    this.#loadId++;
    this.#controller?.abort();
    this.#dropEngine();
    this.replaying = true;
    this.replayRecordedAt = trace.recordedAt;
    this.adapter = trace.adapter;
    this.model = withLaterSwitches(trace.model);
    this.settings = this.model.settings;
    this.runs = trace.runs;
    this.marks = trace.marks;
    this.profile = trace.profile;
    this.sweep = trace.sweep;
    this.distributions = trace.distributions;
    this.workbench = trace.workbench;
    this.ab = trace.ab;
    this.batchSweep = trace.batching ?? null;
    this.kvSnapshot = trace.kv ?? null;
    const last = trace.runs[trace.runs.length - 1];
    this.result = last?.result ?? null;
    this.stepMs = last?.stepMs ?? [];
    this.ttftMs = last?.ttftMs ?? null;
    this.text = last?.result?.text ?? '';
    this.streamed = [];
    this.tokens = last?.result?.tokens ?? [];
    this.error = null;
    this.progress = '';
    this.status = 'done';
  }

  /** Fetches a recorded trace and replays it. */
  async replayFrom(url: string): Promise<void> {
    this.status = 'loading';
    this.progress = `loading the recorded trace ${url}…`;
    try {
      const response = await fetch(url);
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      this.replay((await response.json()) as LabTrace);
    } catch (error) {
      this.progress = '';
      this.#fail(`Could not replay ${url}: ${describeError(error)}`);
    }
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

/**
 * A recorded model report with the switches added after it was recorded: each at its default, the
 * only value offered (a replay cannot change switches anyway).
 */
function withLaterSwitches(model: ModelInfo): ModelInfo {
  const settings: EngineSettings = { ...urlDefaults.settings, ...model.settings };
  // Typed as present, but absent from traces recorded before these switches existed.
  const recorded: Partial<SettingChoices> = model.choices;
  const choices: SettingChoices = {
    ...model.choices,
    speculative: recorded.speculative ?? { available: [settings.speculative], unavailable: [] },
    draftTokens: recorded.draftTokens ?? { available: [settings.draftTokens], unavailable: [] },
  };
  return { ...model, settings, choices };
}
