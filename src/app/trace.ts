// A recorded lab session: everything the panels draw, as measured. The page records one while it
// runs (exportable as JSON) and every panel can render from one instead of a live engine: the
// component tests and presenter mode's replay use traces from static/traces/.
import type { AdapterReport, GenerateResult, ModelInfo } from '../engine/engine.ts';
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
}
