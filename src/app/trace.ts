// A recorded lab session: everything the panels draw, as measured. The page records one while it
// runs (exportable as JSON) and every panel can render from one instead of a live engine: the
// component tests and presenter mode's replay use traces from static/traces/.
import type { AdapterReport, BatchKvState, BatchStepEvent, GenerateResult, ModelInfo } from '../engine/engine.ts';
import type { PageSnapshot } from '../engine/kv/page-pool.ts';
import type { EngineSettings, StepDistribution, StepProfile, WorkbenchReport } from '../engine/telemetry.ts';

/** One generation as the page saw it. */
export interface RunRecord {
  /** Sequential id within the session. */
  id: number;
  /** Short description of the settings, e.g. "q4_0 · naive · gpu sampler". */
  label: string;
  settings: EngineSettings;
  /** Bytes one decode step read under these settings (MemoryReport.bytesPerToken). */
  bytesPerToken: number;
  prompt: string;
  /** Wall time of each decode step, ms (the first includes prefill's last step). */
  stepMs: number[];
  /** Page-measured time from pressing Generate to the first token. */
  ttftMs: number | null;
  result: GenerateResult | null;
}

/** A switch flipped between runs: where the tokens/sec chart draws a mark. */
export interface SwitchMark {
  /** Index of the first run made with the new setting. */
  beforeRun: number;
  /** e.g. "weight format f32 → q4_0". */
  label: string;
}

/** One point of the TTFT/TPOT against prompt length sweep. */
export interface PromptSweepPoint {
  promptTokens: number;
  ttftMs: number;
  /** Mean time per output token after the first. */
  tpotMs: number;
}

/** Two runs of the same prompt under two configurations (the A/B recorder). */
export interface AbComparison {
  prompt: string;
  a: RunRecord;
  b: RunRecord;
}

/** One batch size of the batching sweep: the same prompt as `batchSize` copies served together. */
export interface BatchSweepPoint {
  batchSize: number;
  /** Generated tokens of every copy ÷ wall time. */
  aggregateTokensPerSecond: number;
  /** Mean over copies of 1000 ÷ TPOT: the speed one user sees once their answer streams. */
  perUserTokensPerSecond: number;
  /** Means over the copies; null when no copy produced the figure (TPOT needs two tokens). */
  meanTtftMs: number | null;
  meanTpotMs: number | null;
  wallMs: number;
  steps: number;
  /** Rows the steps ran (prompt tokens computed + generated tokens). */
  rows: number;
  /** Prompt tokens of one copy (BOS included). */
  promptTokens: number;
  /** Generated tokens of all copies together. */
  generatedTokens: number;
  /** KV memory at the step that held the most. */
  kvPeak: BatchKvState;
}

/** The batching sweep: one point per batch size, all under the same settings. */
export interface BatchSweep {
  prompt: string;
  /** Tokens each copy generates at most. */
  maxTokens: number;
  /** The switches during the sweep (its weight format sets the matrices' bytes per FLOP). */
  settings: EngineSettings;
  points: BatchSweepPoint[];
}

/** A batch step that carried the page pool. */
export type PagedStep = BatchStepEvent & { pages: PageSnapshot[] };

/** The KV-cache pool during a mixed batch: requests of different lengths, some sharing a prefix, more of them than run at once. */
export interface KvSnapshot {
  /** The batch's requests; 'request-N' among a page's owners is requests[N]. */
  requests: Array<{ prompt: string; maxTokens: number }>;
  /** Sequences that ran at once (the others waited for a slot). */
  maxBatch: number;
  /** The step shown: the latest while the batch runs; once it has ended, the one that reserved the most. */
  step: PagedStep;
  state: 'running' | 'finished' | 'cancelled';
  /** Prompt tokens served from the prefix cache and prompt tokens computed, once it has ended. */
  prefix: { hitTokens: number; computedTokens: number } | null;
}

export interface LabTrace {
  version: 1;
  /** ISO time the trace was recorded. */
  recordedAt: string;
  adapter: AdapterReport;
  model: ModelInfo;
  runs: RunRecord[];
  marks: SwitchMark[];
  profile: StepProfile | null;
  sweep: PromptSweepPoint[];
  distributions: StepDistribution[];
  workbench: WorkbenchReport | null;
  ab: AbComparison | null;
  /** Absent from traces recorded before the batching and KV-cache panels. */
  batching?: BatchSweep | null;
  kv?: KvSnapshot | null;
}
