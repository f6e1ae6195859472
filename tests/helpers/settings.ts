// The switches added after the first panels (KV cache, speculative decoding) as fixtures: the engine's defaults, and every value offered, for tests
// that build EngineSettings or SettingChoices by hand.
import type { EngineSettings, SettingChoices } from '../../src/engine/telemetry.ts';

type LaterSwitch = 'kvCache' | 'pageSize' | 'prefixCache' | 'attention' | 'speculative' | 'draftTokens';

export const laterSettingDefaults: Pick<EngineSettings, LaterSwitch> = { kvCache: 'contiguous', pageSize: 16, prefixCache: true, attention: 'fused', speculative: 'off', draftTokens: 4 };

export const laterChoicesAll: Pick<SettingChoices, LaterSwitch> = {
  kvCache: { available: ['contiguous', 'paged'], unavailable: [] },
  pageSize: { available: [8, 16, 32], unavailable: [] },
  prefixCache: { available: [true, false], unavailable: [] },
  attention: { available: ['fused', 'splitK', 'unfused'], unavailable: [] },
  speculative: { available: ['off', 'draft-q4', 'ngram'], unavailable: [{ value: 'draft-model', reason: 'needs a draft model given at load' }] },
  draftTokens: { available: [1, 2, 3, 4, 5, 6, 7, 8], unavailable: [] },
};
