// The pipeline panel's figures from hand-built timelines: stage times and shares, decode steps
// (speculative passes as one span), TTFT, TPOT and the summed detokenize and write times.
import { describe, expect, it } from 'vitest';
import { decodeSteps, stageRows, stageSpans, stagesOf, summarizeTimeline, timelineLabel, timelineTotalMs } from '../src/app/pipeline.ts';
import type { RequestTimeline } from '../src/engine/timeline.ts';
import { servedTimeline, timelineToken } from './helpers/timelines.ts';

const token = (atMs: number, stepMs: number, step: number, batchRows: number) => timelineToken(atMs, stepMs, step, batchRows);

/** A server request: 60 ms, its first token after a 20 ms prefill, then three 10 ms steps shared with fewer and fewer sequences. */
const served = servedTimeline({ id: 'cmpl-1', stream: true });

/** The page's engine with speculative decoding: after the first token, a pass that kept 2 tokens and one that kept 3. */
const speculative: RequestTimeline = {
  id: '7',
  source: 'engine',
  endpoint: 'generate',
  stream: true,
  arrivedAt: 1_700_000_000_000,
  finished: true,
  outcome: 'stop',
  promptTokens: 5,
  cachedPromptTokens: 0,
  computedPromptTokens: 5,
  stages: [
    { name: 'tokenize', startMs: 0, endMs: 2 },
    { name: 'prefill', startMs: 2, endMs: 12 },
    { name: 'decode', startMs: 12, endMs: 30 },
    { name: 'respond', startMs: 30, endMs: 31 },
  ],
  tokens: [token(12, 10, 0, 5), token(20, 8, 1, 4), token(20, 0, 1, 4), token(30, 10, 2, 4), token(30, 0, 2, 4), token(30, 0, 2, 4)],
};

describe('pipeline figures', () => {
  it("gives each stage its time and share of the request's whole time", () => {
    expect(timelineTotalMs(served)).toBe(60);
    const spans = stageSpans(served);
    expect(spans.map((s) => [s.name, s.ms])).toEqual([
      ['parse', 1],
      ['tokenize', 2],
      ['queue', 5],
      ['prefill', 20],
      ['decode', 30],
      ['respond', 2],
    ]);
    expect(spans.find((s) => s.name === 'prefill')!.share).toBeCloseTo(1 / 3, 12);
    expect(spans.find((s) => s.name === 'decode')!.share).toBeCloseTo(0.5, 12);
    expect(spans.reduce((sum, s) => sum + s.share, 0)).toBeCloseTo(1, 12);
  });

  it('lays the decode steps after the first token on the request clock, a speculative pass as one span', () => {
    expect(decodeSteps(served)).toEqual([
      { step: 6, startMs: 28, endMs: 38, ms: 10, rows: 3, tokens: 1 },
      { step: 7, startMs: 38, endMs: 48, ms: 10, rows: 2, tokens: 1 },
      { step: 8, startMs: 48, endMs: 58, ms: 10, rows: 1, tokens: 1 },
    ]);
    expect(decodeSteps(speculative)).toEqual([
      { step: 1, startMs: 12, endMs: 20, ms: 8, rows: 4, tokens: 2 },
      { step: 2, startMs: 20, endMs: 30, ms: 10, rows: 4, tokens: 3 },
    ]);
  });

  it('summarizes TTFT, TPOT, steps, rows and the summed detokenize and write times', () => {
    const summary = summarizeTimeline(served);
    expect(summary).toEqual({
      totalMs: 60,
      promptTokens: 12,
      cachedPromptTokens: 4,
      computedPromptTokens: 8,
      generatedTokens: 4,
      decodeSteps: 3,
      tokensPerStep: 1,
      meanRows: 2,
      maxRows: 3,
      ttftMs: 28,
      meanTpotMs: 10,
      detokenizeMs: expect.closeTo(0.4, 12),
      writeMs: expect.closeTo(1, 12),
    });
    expect(summarizeTimeline(speculative)).toMatchObject({ generatedTokens: 6, decodeSteps: 2, tokensPerStep: 2.5, meanRows: 4, ttftMs: 12, meanTpotMs: (30 - 12) / 5 });
  });

  it('reads a request that has only just arrived: no tokens, no shares yet', () => {
    const arrived: RequestTimeline = { ...served, finished: false, outcome: null, cachedPromptTokens: null, computedPromptTokens: null, stages: [{ name: 'parse', startMs: 0, endMs: 0 }], tokens: [] };
    expect(stageSpans(arrived)[0].share).toBeNaN();
    expect(summarizeTimeline(arrived)).toMatchObject({ totalMs: 0, generatedTokens: 0, decodeSteps: 0, tokensPerStep: null, meanRows: null, maxRows: null, ttftMs: null, meanTpotMs: null, detokenizeMs: 0, writeMs: 0 });
    expect(timelineLabel(arrived)).toBe('server · completions (streamed), running');
  });

  it('names the requests, lists the stages of both in pipeline order, and flattens them for CSV', () => {
    expect(timelineLabel(served)).toBe('server · completions (streamed)');
    expect(timelineLabel(speculative)).toBe('in-page engine');
    expect(stagesOf([speculative])).toEqual(['tokenize', 'prefill', 'decode', 'respond']);
    expect(stagesOf([speculative, served])).toEqual(['parse', 'tokenize', 'queue', 'prefill', 'decode', 'respond']);
    const rows = stageRows([served, speculative]);
    expect(rows).toHaveLength(10);
    expect(rows[3]).toEqual({ request: 'cmpl-1', source: 'server', stage: 'prefill', startMs: 8, endMs: 28, ms: 20, share: 20 / 60 });
    expect(rows[7]).toMatchObject({ request: '7', source: 'engine', stage: 'prefill', ms: 10 });
  });
});
