// The batched workloads the lab runs through Engine.generateBatch, shared by the page
// (lab.svelte.ts) and the trace recorder (Node): the batching sweep (one prompt as N copies at
// growing N) and the mixed batch the KV-cache panel watches (prompts of different lengths, some
// starting alike, more of them than run at once, so requests wait, join and leave).
import type { BatchGenerateRequest, BatchGenerateResult, BatchStepEvent } from '../engine/engine.ts';
import type { EngineSettings } from '../engine/telemetry.ts';
import type { BatchSweepPoint, PagedStep } from './trace.ts';

/** Batch sizes the sweep runs, up to the largest one picked. */
export const sweepBatchSizes = [1, 2, 4, 8, 16, 32] as const;

/** What every copy of the sweep's prompt is generated with. */
export interface SweepGeneration {
  prompt: string;
  maxTokens: number;
  temperature: number;
  /** Copy i samples with seed + i (modulo 2^32, the sampler's seed range). */
  seed: number;
  chat: boolean;
}

/**
 * One batch of the sweep: `batchSize` copies, all admitted at once. The prefix cache is off so
 * every copy prefills its own prompt and the batch sizes compare like with like.
 */
export function sweepBatch(batchSize: number, generation: SweepGeneration, settings: EngineSettings): BatchGenerateRequest {
  const { prompt, maxTokens, temperature, seed, chat } = generation;
  return {
    requests: Array.from({ length: batchSize }, (_, i) => ({ prompt, maxTokens, temperature, seed: (seed + i) % 2 ** 32, chat })),
    maxBatch: batchSize,
    kv: 'paged',
    pageSize: settings.pageSize,
    prefixCache: false,
    attention: settings.attention,
  };
}

/**
 * A short batch the sweep runs first and does not record, at its largest batch size: the engine
 * builds its batched model and compiles its kernels on first use, which would otherwise be charged
 * to the first batch size measured.
 */
export function warmUpBatch(batchSize: number, generation: SweepGeneration, settings: EngineSettings): BatchGenerateRequest {
  return sweepBatch(batchSize, { ...generation, maxTokens: 2 }, settings);
}

function meanOf(values: ReadonlyArray<number | null>): number | null {
  const known = values.filter((v): v is number => v !== null);
  return known.length === 0 ? null : known.reduce((total, v) => total + v, 0) / known.length;
}

/** The sweep's figures for one batch size. */
export function sweepPoint(batchSize: number, result: BatchGenerateResult): BatchSweepPoint {
  return {
    batchSize,
    aggregateTokensPerSecond: result.aggregateTokensPerSecond,
    perUserTokensPerSecond: result.perUserTokensPerSecond,
    meanTtftMs: meanOf(result.sequences.map((s) => s.ttftMs)),
    meanTpotMs: meanOf(result.sequences.map((s) => s.tpotMs)),
    wallMs: result.wallMs,
    steps: result.steps,
    rows: result.rows,
    promptTokens: result.sequences[0]?.promptTokens ?? 0,
    generatedTokens: result.sequences.reduce((total, s) => total + s.generatedTokens, 0),
    kvPeak: result.kvPeak,
  };
}

// Long enough to fill more than one 32-token page of the stories tokenizers.
const sharedBeginning = 'Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her friends and her big brown dog.';

/**
 * The mixed batch's prompts and lengths. The first request runs longest; the two short ones that
 * start beside it leave early, and the two that begin like it join while it still runs, so the
 * prefix cache can hand them its pages.
 */
const mixedRequests = [
  { prompt: `${sharedBeginning} One day, she found a shiny red ball.`, maxTokens: 16 },
  { prompt: 'Tom had a dog.', maxTokens: 4 },
  { prompt: 'The cat sat on the mat and looked at the bird in the tree.', maxTokens: 6 },
  { prompt: `${sharedBeginning} Her mom said`, maxTokens: 10 },
  { prompt: `${sharedBeginning} They played all day long.`, maxTokens: 8 },
  { prompt: 'Sam', maxTokens: 12 },
] as const;

/** Sequences of the mixed batch that run at once: fewer than its requests, so some wait. */
export const mixedBatchSize = 3;

/** The mixed batch under the page size, prefix cache and attention switches, in the given KV layout. */
export function mixedBatch(settings: EngineSettings, kv: 'paged' | 'contiguous', temperature: number, seed: number): BatchGenerateRequest {
  return {
    requests: mixedRequests.map((r, i) => ({ prompt: r.prompt, maxTokens: r.maxTokens, temperature, seed: (seed + i) % 2 ** 32 })),
    maxBatch: mixedBatchSize,
    kv,
    pageSize: settings.pageSize,
    prefixCache: settings.prefixCache,
    attention: settings.attention,
  };
}

/** The step event narrowed to one that carries the page pool, or null. */
export function pagedStep(event: BatchStepEvent): PagedStep | null {
  return event.pages ? { ...event, pages: event.pages } : null;
}

/** Of two paged steps, the one whose sequences reserved more KV bytes (the earlier on a tie). */
export function fullerStep(earlier: PagedStep | null, later: PagedStep): PagedStep {
  return earlier && earlier.kv.reservedBytes >= later.kv.reservedBytes ? earlier : later;
}
