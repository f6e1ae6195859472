// Small derived figures of a run, shared by the page (lab.svelte.ts) and the trace recorder (Node).
import type { ConstraintReport, GenerateResult, ModelInfo, SpeculativeReport } from '../engine/engine.ts';
import type { EngineSettings } from '../engine/telemetry.ts';
import { formatFigure, formatShare } from './charts/format.ts';
import { formatDuration } from './charts/quantity-format.ts';

/** Short description of a configuration, e.g. "q4_0 · auto→naive · gpu sampler". */
export function settingsLabel(settings: EngineSettings, model: ModelInfo | null): string {
  const variant = settings.matvecVariant === 'auto' && model ? `auto→${model.matvecVariant}` : settings.matvecVariant;
  return `${settings.weightFormat} · ${variant} · ${settings.sampler} sampler`;
}

/** Mean time per output token after the first (whose time is the prefill's). */
export function tpotMs(result: Pick<GenerateResult, 'generatedTokens' | 'decodeMs'>): number | null {
  return result.generatedTokens > 1 ? result.decodeMs / (result.generatedTokens - 1) : null;
}

/** One figure of a run's stats: a name, its value, and a short note on what it counts. */
export interface RunStat {
  name: string;
  value: string;
  note: string;
}

/** Speculative decoding's figures: how often the draft was right, what each target pass yielded, where the time went. */
export function speculativeStats(report: SpeculativeReport): RunStat[] {
  const draftShare = report.draftMs + report.verifyMs > 0 ? report.draftMs / (report.draftMs + report.verifyMs) : Number.NaN;
  return [
    { name: 'Draft acceptance', value: formatShare(report.acceptanceRate), note: `${report.accepted} of ${report.proposed} proposed by ${report.draft}, ${report.draftTokens} per pass` },
    { name: 'Tokens per target pass', value: formatFigure(report.tokensPerTargetPass), note: `${report.targetPasses} verification ${report.targetPasses === 1 ? 'pass' : 'passes'}` },
    { name: 'Draft vs verify', value: `${formatDuration(report.draftMs)} / ${formatDuration(report.verifyMs)}`, note: `drafting ${formatShare(draftShare)} of the two` },
  ];
}

/** The constraint's figures: mask time per sampled step, next to the decode step it must stay small against. */
export function constraintStats(report: ConstraintReport, result: Pick<GenerateResult, 'generatedTokens' | 'decodeMs'>): RunStat[] {
  const perStep = report.maskCalls > 0 ? report.maskMs / report.maskCalls : Number.NaN;
  const step = tpotMs(result);
  return [
    {
      name: 'Mask time',
      value: `${formatDuration(perStep)} / step`,
      note: `${formatDuration(report.maskMs)} over ${report.maskCalls} masks, ${report.cacheHits} from the cache, worst ${formatDuration(report.maxMaskMs)}${step === null ? '' : `; a decode step took ${formatDuration(step)}`}`,
    },
    { name: 'Constraint', value: report.spec, note: report.complete ? 'output complete' : 'stopped before the output was complete' },
  ];
}
