// Continuous batching: many requests share the GPU through one BatchModel. Every step gathers the
// rows of all running sequences — a chunk of prompt tokens for a sequence still in prefill, one
// token for a decoding one — runs them together, and hands each sequence its sampled token. New
// requests are admitted and finished ones retired at any step.
//
// KV placement:
//   paged       a sequence takes pages as its tokens arrive (one page per blockSize tokens), so it
//               holds at most one partly filled page; full pages of prompts go to the prefix cache.
//   contiguous  the baseline: a sequence takes one consecutive run of pages covering the whole
//               context when it is admitted, whatever it will use.
//
// Admission policy: a request is admitted (first come, first served) only when the pool can
// guarantee pages for its whole prompt plus its max tokens, counting the pages already promised to
// running sequences but not yet taken, after the prefix cache has served what it can. A running
// sequence therefore never runs out of KV memory and nothing is preempted; a request that does not
// fit waits, and later requests wait behind it (no starvation). A request larger than the whole
// pool is refused at once.
import { CancelledError, RequestError } from '../errors.ts';
import { kvMemoryReport, type KvMemoryReport } from '../kv/kv-memory.ts';
import { kvBytesPerToken, pageBytes, SequenceKv, type PageSnapshot } from '../kv/page-pool.ts';
import type { PrefixCache } from '../kv/prefix-cache.ts';
import type { StopReason } from '../engine.ts';
import type { SamplingFilters } from '../reference/sample.ts';
import type { BatchModel, StepRow } from './batch-model.ts';

export interface BatchRequest {
  /** The prompt's token ids (BOS included when the model wants one). */
  prompt: readonly number[];
  maxTokens: number;
  /** 0 = greedy. */
  temperature: number;
  /** Top-k / top-p / min-p cuts (default none). */
  filters?: SamplingFilters;
  seed: number;
  /** Tokens that end the sequence (kept in its output). */
  stopIds: readonly number[];
}

export interface SequenceResult {
  /** Prompt then generated tokens. */
  tokens: number[];
  promptTokens: number;
  generatedTokens: number;
  /** Prompt tokens whose K/V came from the prefix cache instead of being computed. */
  cachedTokens: number;
  /** From submit to the first generated token (queueing included). */
  ttftMs: number | null;
  /** Mean time per generated token after the first. */
  tpotMs: number | null;
  stopReason: StopReason;
}

export interface SchedulerOptions {
  /** Sequences running at once (default 8). */
  maxBatch?: number;
  /** Prompt tokens one sequence may prefill per step (default 32): long prompts share steps with decodes. */
  prefillChunk?: number;
  /** Reuse the K/V pages of earlier prompts' full pages (default true; paged placement only). */
  prefixCache?: boolean;
  /** How sequences take pages (default paged; see the top of this file). */
  kv?: 'paged' | 'contiguous';
  /** Called after every step, with the step's row count (e.g. to report KV memory live). */
  onStep?: (rows: number) => void;
}

/** KV memory of the running sequences right now. */
export interface KvUsage {
  /** Bytes of the distinct pages the running sequences hold. */
  reservedBytes: number;
  /** Bytes of those pages holding K/V of tokens already written (shared pages once). */
  liveBytes: number;
  /** The same sequences' lengths laid out both ways (what each layout reserves for them). */
  paged: KvMemoryReport;
  contiguous: KvMemoryReport;
}

export interface SchedulerStats {
  steps: number;
  rows: number;
  /** Prompt tokens served from the prefix cache / computed. */
  prefixHitTokens: number;
  computedPromptTokens: number;
}

interface Sequence {
  id: number;
  request: BatchRequest;
  kv: SequenceKv | null;
  /** Pages the sequence may hold at most; admission guaranteed them. */
  pageBudget: number;
  tokens: number[];
  /** Prompt tokens whose K/V exist (cached or computed). */
  prefilled: number;
  cachedTokens: number;
  submittedAt: number;
  firstTokenAt: number | null;
  lastTokenAt: number | null;
  signal?: AbortSignal;
  onToken?: (token: number) => void;
  resolve: (result: SequenceResult) => void;
  reject: (error: unknown) => void;
}

export class Scheduler {
  private readonly waiting: Sequence[] = [];
  private readonly running: Sequence[] = [];
  private readonly cache: PrefixCache | null;
  private readonly maxBatch: number;
  private readonly prefillChunk: number;
  private readonly placement: 'paged' | 'contiguous';
  private readonly onStep: ((rows: number) => void) | undefined;
  private loop: Promise<void> | null = null;
  private nextId = 0;
  private failed: unknown = null;
  readonly stats: SchedulerStats = { steps: 0, rows: 0, prefixHitTokens: 0, computedPromptTokens: 0 };

  constructor(
    private readonly model: BatchModel,
    options: SchedulerOptions = {},
  ) {
    this.maxBatch = options.maxBatch ?? 8;
    this.prefillChunk = options.prefillChunk ?? 32;
    if (!Number.isInteger(this.maxBatch) || this.maxBatch < 1 || this.maxBatch > model.maxSequences) {
      throw new RequestError(`maxBatch must be a whole number from 1 to ${model.maxSequences}, got ${this.maxBatch}`);
    }
    if (!Number.isInteger(this.prefillChunk) || this.prefillChunk < 1) throw new RequestError(`prefillChunk must be a whole number >= 1, got ${this.prefillChunk}`);
    this.placement = options.kv ?? 'paged';
    if (this.placement !== 'paged' && this.placement !== 'contiguous') throw new RequestError(`kv must be paged or contiguous, got ${String(this.placement)}`);
    this.onStep = options.onStep;
    // A contiguous cache places whole-context runs: cached pages scattered over the pool would
    // fragment it, so the model's prefix cache is emptied and not used.
    if (this.placement === 'contiguous') model.prefixCache.clear();
    this.cache = options.prefixCache === false || this.placement === 'contiguous' ? null : model.prefixCache;
  }

  /** Queues a request; resolves when its sequence finishes (or rejects with CancelledError when aborted while queued). */
  submit(request: BatchRequest, onToken?: (token: number) => void, signal?: AbortSignal): Promise<SequenceResult> {
    if (this.failed) return Promise.reject(this.failed);
    const { prompt, maxTokens } = request;
    if (prompt.length === 0) return Promise.reject(new RequestError('the prompt must hold at least one token'));
    if (prompt.length >= this.model.contextLength) {
      return Promise.reject(new RequestError(`the prompt is ${prompt.length} tokens but the context holds ${this.model.contextLength}`));
    }
    if (!Number.isInteger(maxTokens) || maxTokens < 1) return Promise.reject(new RequestError(`maxTokens must be a whole number >= 1, got ${maxTokens}`));
    const needed = this.pageBudget(request);
    if (needed > this.model.pool.pageCount) {
      return Promise.reject(new RequestError(`the request needs ${needed} KV pages but the pool has ${this.model.pool.pageCount}`));
    }
    return new Promise((resolve, reject) => {
      this.waiting.push({
        id: this.nextId++,
        request,
        kv: null,
        pageBudget: this.pageBudget(request),
        tokens: [...prompt],
        prefilled: 0,
        cachedTokens: 0,
        submittedAt: performance.now(),
        firstTokenAt: null,
        lastTokenAt: null,
        signal,
        onToken,
        resolve,
        reject,
      });
      this.loop ??= this.run().finally(() => {
        this.loop = null;
      });
    });
  }

  /** KV memory of the running sequences: what they hold, and their lengths under both layouts. */
  kvUsage(): KvUsage {
    const { config, contextLength, layout } = this.model;
    const lengths = this.running.map((s) => this.writtenTokens(s));
    const fill = this.pageFill();
    let liveSlots = 0;
    for (const slots of fill.values()) liveSlots += slots;
    return {
      reservedBytes: fill.size * pageBytes(layout),
      liveBytes: liveSlots * kvBytesPerToken(config),
      paged: kvMemoryReport(lengths, config, contextLength, 'paged', layout.blockSize),
      contiguous: kvMemoryReport(lengths, config, contextLength, 'contiguous', layout.blockSize),
    };
  }

  /** Every page of the pool, pages of running sequences filled as far as their K/V is written. */
  pages(): PageSnapshot[] {
    const fill = this.pageFill();
    return this.model.pool.snapshot().map((page) => (fill.has(page.page) ? { ...page, filledSlots: fill.get(page.page)! } : page));
  }

  /**
   * Slots holding written K/V in each page a running sequence holds (a shared page counted once, as
   * full as its fullest owner has it). The pool only knows reservations, which for contiguous
   * placement are the whole context.
   */
  private pageFill(): Map<number, number> {
    const { blockSize } = this.model.layout;
    const fill = new Map<number, number>();
    for (const s of this.running) {
      const written = this.writtenTokens(s);
      s.kv!.blockTable.forEach((page, block) => {
        fill.set(page, Math.max(fill.get(page) ?? 0, Math.max(0, Math.min(blockSize, written - block * blockSize))));
      });
    }
    return fill;
  }

  /** Pages only the prefix cache holds. */
  get cachedPages(): number {
    return this.model.prefixCache.reclaimable();
  }

  get runningCount(): number {
    return this.running.length;
  }

  get waitingCount(): number {
    return this.waiting.length;
  }

  /** Pages a request may ever hold: for prompt + max tokens (within the context), or the whole context when contiguous. */
  private pageBudget(request: BatchRequest): number {
    const { contextLength, layout } = this.model;
    const tokens = this.placement === 'contiguous' ? contextLength : Math.min(request.prompt.length + request.maxTokens, contextLength);
    return Math.ceil(tokens / layout.blockSize);
  }

  /** Positions whose K/V a sequence has written (the newest sampled token's are written next step). */
  private writtenTokens(s: Sequence): number {
    return s.prefilled < s.request.prompt.length ? s.prefilled : s.tokens.length - 1;
  }

  /** Pages promised to running sequences but not yet taken. */
  private promisedPages(): number {
    return this.running.reduce((sum, s) => sum + s.pageBudget - s.kv!.blockTable.length, 0);
  }

  private async run(): Promise<void> {
    try {
      while (this.waiting.length > 0 || this.running.length > 0) {
        this.dropCancelled();
        this.admit();
        if (this.running.length === 0) {
          // Nothing fits while nothing runs: only cancelled waiters could be ahead; retry after them.
          if (this.waiting.length > 0 && this.waiting.every((s) => !s.signal?.aborted)) throw new Error('the KV pool cannot hold the next request even when empty');
          continue;
        }
        await this.step();
      }
    } catch (error) {
      this.failed = error;
      for (const s of [...this.running, ...this.waiting]) {
        s.kv?.free();
        s.reject(error);
      }
      this.running.length = 0;
      this.waiting.length = 0;
    }
  }

  private dropCancelled(): void {
    for (let i = this.waiting.length - 1; i >= 0; i--) {
      if (this.waiting[i].signal?.aborted) this.waiting.splice(i, 1)[0].reject(new CancelledError('cancelled while queued'));
    }
    for (const s of [...this.running]) if (s.signal?.aborted) this.finish(s, 'cancelled');
  }

  private admit(): void {
    const pool = this.model.pool;
    while (this.waiting.length > 0 && this.running.length < this.maxBatch) {
      const s = this.waiting[0];
      const hit = this.cache ? this.cache.lookup(s.request.prompt) : { pages: [], tokens: 0 };
      const kv = new SequenceKv(pool, `request-${s.id}`, hit.pages);
      let admitted: boolean;
      if (this.placement === 'contiguous') {
        admitted = kv.append(s.pageBudget * pool.blockSize, 'run');
      } else {
        // The hit pages are retained now, so they are no longer counted as reclaimable.
        const available = pool.freePages + this.model.prefixCache.reclaimable() - this.promisedPages();
        admitted = s.pageBudget - hit.pages.length <= available;
      }
      if (!admitted) {
        kv.free(); // gives the cached pages back
        return;
      }
      this.waiting.shift();
      s.kv = kv;
      s.prefilled = hit.tokens;
      s.cachedTokens = hit.tokens;
      this.stats.prefixHitTokens += hit.tokens;
      this.stats.computedPromptTokens += s.request.prompt.length - hit.tokens;
      this.running.push(s);
    }
  }

  /** Takes the pages for `count` more tokens of `s`, which admission guaranteed (paged placement). */
  private grow(s: Sequence, count: number): void {
    const kv = s.kv!;
    if (this.placement === 'contiguous') return;
    const needed = Math.max(0, this.writtenTokens(s) + count - kv.length);
    if (!kv.append(needed)) throw new Error(`internal: the pool could not supply pages promised to request-${s.id}`);
  }

  private async step(): Promise<void> {
    const rows: StepRow[] = [];
    const sampling: Sequence[] = [];
    const copies = [];
    for (const s of this.running) {
      const kv = s.kv!;
      const budget = this.model.maxRows - rows.length;
      if (budget === 0) break;
      const sample = { seed: s.request.seed, temperature: s.request.temperature, filters: s.request.filters };
      const promptLength = s.request.prompt.length;
      const prefilling = s.prefilled < promptLength;
      const count = prefilling ? Math.min(this.prefillChunk, promptLength - s.prefilled, budget) : 1;
      this.grow(s, count);
      copies.push(...kv.prepareWrite().copies);
      if (prefilling) {
        for (let i = 0; i < count; i++) {
          const position = s.prefilled + i;
          const last = position === promptLength - 1;
          rows.push({ blockTable: kv.blockTable, token: s.tokens[position], position, sample: last ? sample : null });
        }
        s.prefilled += count;
        if (s.prefilled === promptLength) sampling.push(s);
      } else {
        const position = s.tokens.length - 1;
        rows.push({ blockTable: kv.blockTable, token: s.tokens[position], position, sample });
        sampling.push(s);
      }
    }
    const sampled = await this.model.step(rows, copies);
    this.stats.steps++;
    this.stats.rows += rows.length;
    const now = performance.now();
    sampling.forEach((s, i) => {
      const token = sampled[i];
      if (s.tokens.length === s.request.prompt.length) this.cache?.insert(s.request.prompt, s.kv!.blockTable);
      s.tokens.push(token);
      s.firstTokenAt ??= now;
      s.lastTokenAt = now;
      s.onToken?.(token);
      const generated = s.tokens.length - s.request.prompt.length;
      if (s.request.stopIds.includes(token)) this.finish(s, 'eos');
      else if (generated >= s.request.maxTokens) this.finish(s, 'length');
      else if (s.tokens.length >= this.model.contextLength) this.finish(s, 'context');
    });
    this.onStep?.(rows.length);
  }

  private finish(s: Sequence, stopReason: StopReason): void {
    this.running.splice(this.running.indexOf(s), 1);
    s.kv?.free();
    s.kv = null;
    const generatedTokens = s.tokens.length - s.request.prompt.length;
    s.resolve({
      tokens: s.tokens,
      promptTokens: s.request.prompt.length,
      generatedTokens,
      cachedTokens: s.cachedTokens,
      ttftMs: s.firstTokenAt === null ? null : s.firstTokenAt - s.submittedAt,
      tpotMs: generatedTokens > 1 && s.firstTokenAt !== null && s.lastTokenAt !== null ? (s.lastTokenAt - s.firstTokenAt) / (generatedTokens - 1) : null,
      stopReason,
    });
  }
}
