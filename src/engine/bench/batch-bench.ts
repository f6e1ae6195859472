// The batching benchmark: the same prompt as N concurrent requests for N = 1, 2, 4, ... through
// continuous batching, at each prompt length, giving the lab's Pareto data (per-user against total
// tokens/s), TTFT and TPOT, the KV memory held versus what contiguous allocation would reserve,
// and a shared-prefix run for the prefix cache. Every point runs once untimed first, so pipeline
// compilation (one per row count) stays out of the numbers.
import type { BatchGenerateResult, Engine } from '../engine.ts';

export interface BatchBenchOptions {
  batchSizes: readonly number[];
  /** Prompt lengths in tokens (approximate: the prompt is a repeated sentence cut to this many tokens). */
  promptTokens: readonly number[];
  maxTokens: number;
  pageSize: number;
  /** Called with each point as it is measured (progress). */
  onPoint?: (point: BatchPoint) => void;
}

export interface BatchPoint {
  batchSize: number;
  promptTokens: number;
  generatedTokens: number;
  /** Generated tokens of all sequences per second of wall time, prefill included. */
  aggregateTokensPerSecond: number;
  /** Sum over sequences of each one's decode rate (1000 / TPOT): the decode throughput of the batch. */
  decodeTokensPerSecond: number;
  /** Mean decode rate one user sees. */
  perUserTokensPerSecond: number;
  ttftMs: number;
  tpotMs: number;
  /** KV bytes the sequences held at the peak (paged), live bytes then, and what contiguous allocation reserves for them. */
  kvReservedBytes: number;
  kvLiveBytes: number;
  kvWasteBytes: number;
  contiguousReservedBytes: number;
  contiguousWasteBytes: number;
}

export interface PrefixBenchResult {
  requests: number;
  sharedPrefixTokens: number;
  hitTokens: number;
  computedTokens: number;
  /** TTFT of the requests served after the first one filled the cache, with and without the cache. */
  ttftWithCacheMs: number;
  ttftWithoutCacheMs: number;
}

export interface BatchBenchResult {
  model: string;
  weightFormat: string;
  points: BatchPoint[];
  /** Decode tokens/s at batch 8 over batch 1 (the target is >= 5 on a discrete GPU), per prompt length. */
  batch8Speedup: Array<{ promptTokens: number; ratio: number }>;
  prefix: PrefixBenchResult;
}

const sentence = 'Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her dog. ';

/** A prompt of about `tokens` tokens (BOS included) for `engine`'s tokenizer, found by growing text. */
async function promptOfLength(engine: Engine, tokens: number): Promise<string> {
  // Generating 1 token reports the prompt's token count; grow by words until it reaches `tokens`.
  const words = sentence.repeat(Math.ceil(tokens / 8) + 2).split(' ');
  let lo = 0;
  let hi = words.length;
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    const count = await promptTokenCount(engine, words.slice(0, mid).join(' '));
    if (count <= tokens) lo = mid;
    else hi = mid - 1;
  }
  return words.slice(0, lo).join(' ');
}

async function promptTokenCount(engine: Engine, prompt: string): Promise<number> {
  const result = await engine.generateBatch({ requests: [{ prompt, maxTokens: 1, temperature: 0, seed: 0 }], prefixCache: false });
  return result.sequences[0].promptTokens;
}

function mean(values: number[]): number {
  return values.length === 0 ? 0 : values.reduce((a, b) => a + b, 0) / values.length;
}

function point(result: BatchGenerateResult, batchSize: number): BatchPoint {
  const s = result.sequences;
  const tpots = s.flatMap((q) => (q.tpotMs !== null && q.tpotMs > 0 ? [q.tpotMs] : []));
  const { kvPeak } = result;
  return {
    batchSize,
    promptTokens: s[0].promptTokens,
    generatedTokens: s.reduce((n, q) => n + q.generatedTokens, 0),
    aggregateTokensPerSecond: result.aggregateTokensPerSecond,
    decodeTokensPerSecond: tpots.reduce((sum, t) => sum + 1000 / t, 0),
    perUserTokensPerSecond: result.perUserTokensPerSecond,
    ttftMs: mean(s.flatMap((q) => (q.ttftMs === null ? [] : [q.ttftMs]))),
    tpotMs: mean(tpots),
    kvReservedBytes: kvPeak.reservedBytes,
    kvLiveBytes: kvPeak.liveBytes,
    kvWasteBytes: kvPeak.reservedBytes - kvPeak.liveBytes,
    contiguousReservedBytes: kvPeak.contiguous.reservedBytes,
    contiguousWasteBytes: kvPeak.contiguous.wasteBytes,
  };
}

export async function benchBatching(engine: Engine, options: BatchBenchOptions): Promise<BatchBenchResult> {
  const { batchSizes, maxTokens, pageSize } = options;
  const points: BatchPoint[] = [];
  for (const length of options.promptTokens) {
    const prompt = await promptOfLength(engine, length);
    for (const batchSize of batchSizes) {
      // Greedy copies of one prompt would be identical; distinct seeds at temperature 1 keep them
      // apart while every sequence still runs maxTokens (EOS aside).
      const requests = Array.from({ length: batchSize }, (_, i) => ({ prompt, maxTokens, temperature: 1, seed: i }));
      const run = () => engine.generateBatch({ requests, maxBatch: batchSize, pageSize, kv: 'paged', prefixCache: false });
      await run();
      const measured = point(await run(), batchSize);
      points.push(measured);
      options.onPoint?.(measured);
    }
  }
  const batch8Speedup = options.promptTokens.flatMap((promptTokens, i) => {
    const row = points.slice(i * batchSizes.length, (i + 1) * batchSizes.length);
    const one = row.find((p) => p.batchSize === 1);
    const eight = row.find((p) => p.batchSize === 8);
    return one && eight ? [{ promptTokens: one.promptTokens, ratio: eight.decodeTokensPerSecond / one.decodeTokensPerSecond }] : [];
  });
  return { model: engine.model.source, weightFormat: engine.model.weightFormat, points, batch8Speedup, prefix: await benchPrefix(engine, pageSize) };
}

/** Four requests sharing a long prefix, one after another: the later ones compute only their own tail. */
async function benchPrefix(engine: Engine, pageSize: number): Promise<PrefixBenchResult> {
  const shared = await promptOfLength(engine, 4 * pageSize + 1);
  const tails = ['Tom came to play.', 'The sun was hot.', 'A bird sang.', 'It began to rain.'];
  const runAll = async (prefixCache: boolean) => {
    const results: BatchGenerateResult[] = [];
    // One at a time, so each request can find what the previous ones left in the cache.
    for (const tail of tails) results.push(await engine.generateBatch({ requests: [{ prompt: `${shared} ${tail}`, maxTokens: 2, temperature: 0, seed: 0 }], pageSize, prefixCache }));
    return results;
  };
  await runAll(false); // warm-up
  const without = await runAll(false);
  const withCache = await runAll(true);
  const ttft = (results: BatchGenerateResult[]) => mean(results.slice(1).map((r) => r.sequences[0].ttftMs ?? 0));
  return {
    requests: tails.length,
    sharedPrefixTokens: withCache[1].sequences[0].cachedTokens,
    hitTokens: withCache.reduce((n, r) => n + r.prefix.hitTokens, 0),
    computedTokens: withCache.reduce((n, r) => n + r.prefix.computedTokens, 0),
    ttftWithCacheMs: ttft(withCache),
    ttftWithoutCacheMs: ttft(without),
  };
}
