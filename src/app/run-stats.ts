// Small derived figures of a run, shared by the page (lab.svelte.ts) and the trace recorder (Node).
import type { GenerateResult, ModelInfo } from '../engine/engine.ts';
import type { EngineSettings } from '../engine/telemetry.ts';

/** Short description of a configuration, e.g. "q4_0 · auto→naive · gpu sampler". */
export function settingsLabel(settings: EngineSettings, model: ModelInfo | null): string {
  const variant = settings.matvecVariant === 'auto' && model ? `auto→${model.matvecVariant}` : settings.matvecVariant;
  return `${settings.weightFormat} · ${variant} · ${settings.sampler} sampler`;
}

/** Mean time per output token after the first (whose time is the prefill's). */
export function tpotMs(result: GenerateResult): number | null {
  return result.generatedTokens > 1 ? result.decodeMs / (result.generatedTokens - 1) : null;
}
