// Hand-built request timelines (engine/timeline.ts) for the pipeline panel's tests.
import type { RequestTimeline, TimelineToken } from '../../src/engine/timeline.ts';

/** A generated token's entry; every one writes in 0.25 ms. */
export function timelineToken(atMs: number, stepMs: number, step: number, batchRows: number, detokenizeMs = 0.1): TimelineToken {
  return { token: 100 + step, atMs, stepMs, step, batchRows, detokenizeMs, writeMs: 0.25, text: 'x' };
}

/**
 * A server request of 60 ms with 12 prompt tokens (4 cached): its first token after a 20 ms
 * prefill in a 9-row step, then three 10 ms decode steps shared with fewer and fewer sequences (3, 2, 1 rows).
 */
export function servedTimeline(options: { id: string; stream: boolean; detokenizeMs?: number }): RequestTimeline {
  const token = (atMs: number, stepMs: number, step: number, rows: number) => timelineToken(atMs, stepMs, step, rows, options.detokenizeMs);
  return {
    id: options.id,
    source: 'server',
    endpoint: 'completions',
    stream: options.stream,
    arrivedAt: 1_700_000_000_000,
    finished: true,
    outcome: 'length',
    promptTokens: 12,
    cachedPromptTokens: 4,
    computedPromptTokens: 8,
    stages: [
      { name: 'parse', startMs: 0, endMs: 1 },
      { name: 'tokenize', startMs: 1, endMs: 3 },
      { name: 'queue', startMs: 3, endMs: 8 },
      { name: 'prefill', startMs: 8, endMs: 28 },
      { name: 'decode', startMs: 28, endMs: 58 },
      { name: 'respond', startMs: 58, endMs: 60 },
    ],
    tokens: [token(28, 20, 5, 9), token(38, 10, 6, 3), token(48, 10, 7, 2), token(58, 10, 8, 1)],
  };
}
