// The KV-cache switches as fixtures: the engine's defaults, and every value offered, for tests
// that build EngineSettings or SettingChoices by hand.
import type { EngineSettings, SettingChoices } from '../../src/engine/telemetry.ts';

type KvSwitch = 'kvCache' | 'pageSize' | 'prefixCache' | 'attention';

export const kvSettingDefaults: Pick<EngineSettings, KvSwitch> = { kvCache: 'contiguous', pageSize: 16, prefixCache: true, attention: 'fused' };

export const kvChoicesAll: Pick<SettingChoices, KvSwitch> = {
  kvCache: { available: ['contiguous', 'paged'], unavailable: [] },
  pageSize: { available: [8, 16, 32], unavailable: [] },
  prefixCache: { available: [true, false], unavailable: [] },
  attention: { available: ['fused', 'splitK', 'unfused'], unavailable: [] },
};
