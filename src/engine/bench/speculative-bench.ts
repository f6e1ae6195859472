// The speculative decoding benchmark: decode tokens/s of one engine with speculation off and with
// each draft at several draft lengths, with the acceptance rate and tokens per target pass that
// explain the speed-up. Every configuration runs twice and the second run is timed (the first
// compiles the verification steps' pipelines for each row count).
import type { Engine, GenerateRequest } from '../engine.ts';
import type { SpeculativeKind } from '../telemetry.ts';

export interface SpeculativeBenchOptions {
  drafts: ReadonlyArray<Exclude<SpeculativeKind, 'off'>>;
  draftTokens: readonly number[];
  prompt: string;
  maxTokens: number;
  temperature: number;
  onPoint?: (point: SpeculativePoint) => void;
}

export interface SpeculativePoint {
  /** 'off' for the baseline (the same paged path without a draft). */
  draft: SpeculativeKind;
  draftTokens: number;
  generatedTokens: number;
  decodeTokensPerSecond: number;
  acceptanceRate: number;
  tokensPerTargetPass: number;
  /** Decode tokens/s over the baseline's. */
  speedup: number;
  /** Share of the decode time spent drafting. */
  draftShare: number;
}

export async function benchSpeculative(engine: Engine, options: SpeculativeBenchOptions): Promise<SpeculativePoint[]> {
  const request: GenerateRequest = { prompt: options.prompt, maxTokens: options.maxTokens, temperature: options.temperature, seed: 1 };
  const timed = async () => {
    await engine.generate(request);
    return engine.generate(request);
  };
  const points: SpeculativePoint[] = [];
  const record = (point: SpeculativePoint) => {
    points.push(point);
    options.onPoint?.(point);
  };
  await engine.reconfigure({ kvCache: 'paged', speculative: 'off' });
  const baseline = await timed();
  const baseRate = baseline.decodeTokensPerSecond;
  record({ draft: 'off', draftTokens: 0, generatedTokens: baseline.generatedTokens, decodeTokensPerSecond: baseRate, acceptanceRate: 0, tokensPerTargetPass: 1, speedup: 1, draftShare: 0 });
  for (const draft of options.drafts) {
    for (const draftTokens of options.draftTokens) {
      await engine.reconfigure({ speculative: draft, draftTokens });
      const result = await timed();
      const s = result.speculative!;
      record({
        draft,
        draftTokens,
        generatedTokens: result.generatedTokens,
        decodeTokensPerSecond: result.decodeTokensPerSecond,
        acceptanceRate: s.acceptanceRate,
        tokensPerTargetPass: s.tokensPerTargetPass,
        speedup: baseRate > 0 ? result.decodeTokensPerSecond / baseRate : 0,
        draftShare: s.draftMs + s.verifyMs > 0 ? s.draftMs / (s.draftMs + s.verifyMs) : 0,
      });
    }
  }
  await engine.reconfigure({ speculative: 'off' });
  return points;
}
