// The figures of the request-to-token pipeline panel, computed from one RequestTimeline (the
// server's or the in-page engine's): each stage's time and share of the whole, the decode steps as
// spans on the request's clock, and the request's summary (TTFT, TPOT, detokenize and write time).
import type { RequestTimeline, TimelineStageName } from '../engine/timeline.ts';

/** Every stage a timeline can have, in the order a request goes through them. */
export const stageNames: readonly TimelineStageName[] = ['parse', 'tokenize', 'queue', 'prefill', 'decode', 'respond'];

export interface StageSpan {
  name: TimelineStageName;
  /** Milliseconds since arrival. */
  startMs: number;
  endMs: number;
  ms: number;
  /** Of the request's whole time (NaN while it has none, which formatShare shows as "—"). */
  share: number;
}

/** One forward step (or speculative pass) after the first token, on the request's clock. */
export interface DecodeStep {
  /** The producer's step counter. */
  step: number;
  /** From the previous token of this request to this step's last token, ms since arrival. */
  startMs: number;
  endMs: number;
  ms: number;
  /** Rows the step ran for all sequences together (several sequences batched, or a pass's guesses). */
  rows: number;
  /** Tokens this request got from the step: more than one only from a speculative pass. */
  tokens: number;
}

export interface PipelineSummary {
  /** Arrival to the end of the last stage. */
  totalMs: number;
  promptTokens: number;
  /** Known once the request has finished (null before, or when it failed early). */
  cachedPromptTokens: number | null;
  computedPromptTokens: number | null;
  generatedTokens: number;
  decodeSteps: number;
  /** Generated tokens after the first per decode step: above 1 when speculative passes kept guesses. */
  tokensPerStep: number | null;
  /** Rows of the request's decode steps, mean and largest: above 1 when it shared steps. */
  meanRows: number | null;
  maxRows: number | null;
  /** Arrival to the first token. */
  ttftMs: number | null;
  /** First token to last, per token after the first. */
  meanTpotMs: number | null;
  /** Summed over the tokens: turning tokens into text, and writing (or posting) the text. */
  detokenizeMs: number;
  writeMs: number;
}

/** Arrival to the end of the last stage, ms. */
export function timelineTotalMs(timeline: RequestTimeline): number {
  const { stages } = timeline;
  return stages.length === 0 ? 0 : stages[stages.length - 1].endMs - stages[0].startMs;
}

export function stageSpans(timeline: RequestTimeline): StageSpan[] {
  const total = timelineTotalMs(timeline);
  return timeline.stages.map(({ name, startMs, endMs }) => ({ name, startMs, endMs, ms: endMs - startMs, share: (endMs - startMs) / total }));
}

/**
 * The steps that produced the tokens after the first (the first ends the prefill). Consecutive
 * tokens with the same step number came from one speculative pass and make one span.
 */
export function decodeSteps(timeline: RequestTimeline): DecodeStep[] {
  const steps: DecodeStep[] = [];
  for (const token of timeline.tokens.slice(1)) {
    const last = steps.at(-1);
    if (last && last.step === token.step) {
      last.endMs = token.atMs;
      last.ms = last.endMs - last.startMs;
      last.rows = Math.max(last.rows, token.batchRows);
      last.tokens += 1;
    } else {
      steps.push({ step: token.step, startMs: token.atMs - token.stepMs, endMs: token.atMs, ms: token.stepMs, rows: token.batchRows, tokens: 1 });
    }
  }
  return steps;
}

function sum(values: number[]): number {
  return values.reduce((total, value) => total + value, 0);
}

export function summarizeTimeline(timeline: RequestTimeline): PipelineSummary {
  const { tokens } = timeline;
  const steps = decodeSteps(timeline);
  const first = tokens[0];
  const last = tokens[tokens.length - 1];
  return {
    totalMs: timelineTotalMs(timeline),
    promptTokens: timeline.promptTokens,
    cachedPromptTokens: timeline.cachedPromptTokens,
    computedPromptTokens: timeline.computedPromptTokens,
    generatedTokens: tokens.length,
    decodeSteps: steps.length,
    tokensPerStep: steps.length > 0 ? (tokens.length - 1) / steps.length : null,
    meanRows: steps.length > 0 ? sum(steps.map((s) => s.rows)) / steps.length : null,
    maxRows: steps.length > 0 ? Math.max(...steps.map((s) => s.rows)) : null,
    ttftMs: first ? first.atMs : null,
    meanTpotMs: tokens.length > 1 ? (last.atMs - first.atMs) / (tokens.length - 1) : null,
    detokenizeMs: sum(tokens.map((t) => t.detokenizeMs)),
    writeMs: sum(tokens.map((t) => t.writeMs)),
  };
}

/** The stages any of the timelines went through, in pipeline order (the page has no parse, for one). */
export function stagesOf(timelines: readonly RequestTimeline[]): TimelineStageName[] {
  const present = new Set(timelines.flatMap((t) => t.stages.map((s) => s.name)));
  return stageNames.filter((name) => present.has(name));
}

/** "server · completions (streamed)", "in-page engine"; "running" until the request has finished. */
export function timelineLabel(timeline: RequestTimeline): string {
  const who = timeline.source === 'server' ? `server · ${timeline.endpoint}${timeline.stream ? ' (streamed)' : ''}` : 'in-page engine';
  return timeline.finished ? who : `${who}, running`;
}

/** One row per stage of each timeline, for the panel's CSV export. */
export function stageRows(timelines: readonly RequestTimeline[]): Array<{ request: string; source: RequestTimeline['source']; stage: TimelineStageName; startMs: number; endMs: number; ms: number; share: number }> {
  return timelines.flatMap((t) => stageSpans(t).map((s) => ({ request: t.id, source: t.source, stage: s.name, startMs: s.startMs, endMs: s.endMs, ms: s.ms, share: s.share })));
}
