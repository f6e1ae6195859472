import { render } from 'svelte/server';
import { describe, expect, it } from 'vitest';
import { laterChoicesAll, laterSettingDefaults } from '../helpers/settings.ts';
import { elementWith, visibleText } from '../helpers/ssr.ts';
import type { EngineSettings, SettingChoices } from '../../src/engine/telemetry.ts';
import OptimizationsPanel from '../../src/app/panels/OptimizationsPanel.svelte';
import { constraintLabel, describeChange, describeChanges, landedSwitch, landedSwitches, labSwitches, requestSwitches, settingChange, settingConflict, switchOptions } from '../../src/app/switches.ts';



/** Attributes of every <input> in `html` (valueless attributes map to ''). */
function inputs(html: string): Array<Record<string, string>> {
  return [...html.matchAll(/<input\b([^>]*)>/g)].map(([, attrs]) => Object.fromEntries([...attrs.matchAll(/([\w-]+)(?:="([^"]*)")?/g)].map(([, name, value]) => [name, value ?? ''])));
}

const choices: SettingChoices = {
  weightFormat: { available: ['q4_0', 'f32', 'q8_0', 'f16'], unavailable: [{ value: 'f16-native', reason: 'needs shader-f16' }] },
  matvecVariant: {
    available: ['auto', 'naive', 'splitK', 'multiRow'],
    unavailable: [{ value: 'subgroup', reason: "needs the 'subgroups' feature" }],
  },
  sampler: { available: ['gpu', 'gpu-sort', 'cpu'], unavailable: [] },
  ...laterChoicesAll,
};

const settings: EngineSettings = { weightFormat: 'q8_0', matvecVariant: 'splitK', sampler: 'cpu', ...laterSettingDefaults, pageSize: 32, prefixCache: false };

function panel(overrides: Record<string, unknown> = {}): string {
  return render(OptimizationsPanel, { props: { settings, choices, busy: false, pending: null, onchange: () => {}, ...overrides } }).body;
}

describe('switch catalog', () => {
  it('has a landed switch for each engine setting, and the constraint as a request option', () => {
    expect(landedSwitches.map((s) => s.key)).toEqual(['weightFormat', 'matvecVariant', 'sampler', 'kvCache', 'pageSize', 'prefixCache', 'attention', 'speculative', 'draftTokens']);
    for (const s of landedSwitches) expect(s.setting).toBe(s.key);
    expect(requestSwitches.map((s) => s.key)).toEqual(['constraint']);
    for (const s of requestSwitches) expect(s.setting).toBeNull();
    expect(labSwitches.every((s) => s.landed)).toBe(true);
  });

  it('explains every switch in its own paragraph', () => {
    const paragraphs = labSwitches.map((s) => s.explanation);
    expect(new Set(paragraphs).size).toBe(labSwitches.length);
    for (const p of paragraphs) expect(p.length).toBeGreaterThan(100);
  });

  it('labels chart marks with the switch and both values', () => {
    expect(describeChange('weightFormat', 'f32', 'q4_0')).toBe('weight format f32 → q4_0');
    expect(describeChange('matvecVariant', 'auto', 'naive')).toBe('matvec variant auto → naive');
    expect(describeChange('sampler', 'gpu', 'cpu')).toBe('sampler gpu → cpu');
    expect(describeChange('kvCache', 'contiguous', 'paged')).toBe('KV cache contiguous → paged');
    expect(describeChange('pageSize', 16, 8)).toBe('page size 16 → 8');
    expect(describeChange('prefixCache', true, false)).toBe('prefix cache on → off');
    expect(describeChange('attention', 'fused', 'splitK')).toBe('attention fused → splitK');
    expect(describeChange('sampler', 'gpu', 'gpu-sort')).toBe('sampler gpu → gpu-sort');
    expect(describeChange('speculative', 'off', 'ngram')).toBe('speculative off → ngram');
    expect(describeChange('draftTokens', 4, 6)).toBe('draft tokens 4 → 6');
    expect(() => landedSwitch('batchSize' as keyof EngineSettings)).toThrow(/batchSize/);
  });

  it('names every switch that changed in one mark, in catalog order', () => {
    const paged = { ...settings, kvCache: 'paged', sampler: 'gpu' } satisfies EngineSettings;
    expect(describeChanges(settings, paged)).toBe('sampler cpu → gpu, KV cache contiguous → paged');
    expect(describeChanges(settings, { ...settings, prefixCache: true })).toBe('prefix cache off → on');
    expect(describeChanges(settings, settings)).toBe('');
  });

  it('turns a radio value back into the typed setting, refusing text of the wrong type', () => {
    expect(settingChange('pageSize', '32')).toEqual({ pageSize: 32 });
    expect(settingChange('prefixCache', 'false')).toEqual({ prefixCache: false });
    expect(settingChange('prefixCache', 'true')).toEqual({ prefixCache: true });
    expect(settingChange('kvCache', 'paged')).toEqual({ kvCache: 'paged' });
    expect(settingChange('attention', 'unfused')).toEqual({ attention: 'unfused' });
    expect(settingChange('weightFormat', 'q4_0')).toEqual({ weightFormat: 'q4_0' });
    expect(settingChange('sampler', 'gpu-sort')).toEqual({ sampler: 'gpu-sort' });
    expect(settingChange('speculative', 'draft-q4')).toEqual({ speculative: 'draft-q4' });
    expect(settingChange('draftTokens', '8')).toEqual({ draftTokens: 8 });
    expect(() => settingChange('speculative', 'on')).toThrow(/speculative/);
    expect(() => settingChange('draftTokens', '9')).toThrow(/draft tokens/);
    expect(() => settingChange('pageSize', '16.5')).toThrow(/page size/);
    expect(() => settingChange('prefixCache', 'on')).toThrow(/prefix cache/);
    expect(() => settingChange('kvCache', 'ring')).toThrow(/KV cache/);
    expect(() => settingChange('attention', 'flash')).toThrow(/attention/);
    expect(() => settingChange('sampler', 'tpu')).toThrow(/sampler/);
  });

  it('rules out the CPU sampler with the paged cache, but lets paging replace the CPU sampler', () => {
    const paged = { ...settings, sampler: 'gpu', kvCache: 'paged' } satisfies EngineSettings;
    expect(settingConflict('sampler', 'cpu', paged)).toBe('needs the contiguous KV cache');
    expect(settingConflict('sampler', 'gpu-sort', paged)).toBe('needs the contiguous KV cache');
    expect(settingConflict('sampler', 'gpu', paged)).toBeNull();
    expect(settingConflict('sampler', 'cpu', settings)).toBeNull();
    // The engine turns the sampler to gpu when the cache turns paged.
    expect(settingConflict('kvCache', 'paged', settings)).toBeNull();
    expect(switchOptions('sampler', choices, paged)).toEqual([
      { value: 'gpu', label: 'gpu', note: '4 B read back', available: true },
      { value: 'gpu-sort', label: 'gpu-sort', note: 'bitonic sort, same token', available: false, reason: 'needs the contiguous KV cache' },
      { value: 'cpu', label: 'cpu', note: 'all logits read back', available: false, reason: 'needs the contiguous KV cache' },
    ]);
  });

  it('notes the bytes per weight of each format from the packing code', () => {
    expect(landedSwitch('weightFormat').valueNotes).toEqual({
      f32: '4 B/weight',
      f16: '2 B/weight',
      'f16-native': '2 B/weight, f16 math',
      q8_0: '≈1.06 B/weight',
      q4_0: '≈0.56 B/weight',
    });
  });

  it('orders options as the catalog does, with values it does not know last in the engine order', () => {
    const withNew: SettingChoices = { ...choices, matvecVariant: { available: ['tiled', 'naive', 'auto', 'wide'], unavailable: [{ value: 'subgroup', reason: 'r' }] } };
    expect(switchOptions('matvecVariant', withNew).map((o) => o.value)).toEqual(['auto', 'naive', 'subgroup', 'tiled', 'wide']);
    expect(switchOptions('weightFormat', choices)).toEqual([
      { value: 'f32', label: 'f32', note: '4 B/weight', available: true },
      { value: 'f16', label: 'f16', note: '2 B/weight', available: true },
      { value: 'f16-native', label: 'f16-native', note: '2 B/weight, f16 math', available: false, reason: 'needs shader-f16' },
      { value: 'q8_0', label: 'q8_0', note: '≈1.06 B/weight', available: true },
      { value: 'q4_0', label: 'q4_0', note: '≈0.56 B/weight', available: true },
    ]);
    const sizes: SettingChoices = { ...choices, pageSize: { available: [32, 8, 16], unavailable: [] } };
    expect(switchOptions('pageSize', sizes).map((o) => o.value)).toEqual(['8', '16', '32']);
    expect(switchOptions('prefixCache', choices).map((o) => [o.value, o.label])).toEqual([
      ['true', 'on'],
      ['false', 'off'],
    ]);
  });
});

describe('OptimizationsPanel', () => {
  it('renders one radio group per landed switch, named after it, with every value the adapter reports', () => {
    const html = panel();
    const expected = {
      weightFormat: ['f32', 'f16', 'f16-native', 'q8_0', 'q4_0'],
      matvecVariant: ['auto', 'naive', 'splitK', 'subgroup', 'multiRow'],
      sampler: ['gpu', 'gpu-sort', 'cpu'],
      kvCache: ['contiguous', 'paged'],
      pageSize: ['8', '16', '32'],
      prefixCache: ['true', 'false'],
      attention: ['fused', 'splitK', 'unfused'],
      speculative: ['off', 'draft-q4', 'ngram', 'draft-model'],
      draftTokens: ['1', '2', '3', '4', '5', '6', '7', '8'],
    };
    for (const [key, values] of Object.entries(expected)) {
      const group = elementWith(html, `data-testid="switch-${key}"`);
      const radios = inputs(group);
      expect(radios.map((r) => r.value)).toEqual(values);
      for (const r of radios) {
        expect(r.type).toBe('radio');
        expect(r.name).toBe(`switch-${key}`);
      }
      expect([...group.matchAll(/data-value="([^"]*)"/g)].map((m) => m[1])).toEqual(values);
      expect(visibleText(group)).toContain(landedSwitch(key as keyof EngineSettings).explanation);
    }
  });

  it('checks exactly the current value of each switch', () => {
    const html = panel();
    for (const key of ['weightFormat', 'matvecVariant', 'sampler', 'kvCache', 'pageSize', 'prefixCache', 'attention', 'speculative', 'draftTokens'] as const) {
      const checked = inputs(elementWith(html, `data-testid="switch-${key}"`)).filter((r) => 'checked' in r);
      expect(checked.map((r) => r.value)).toEqual([String(settings[key])]);
    }
  });

  it('writes prefix cache values as on/off and greys out the CPU sampler while the cache is paged', () => {
    const html = panel();
    const prefix = elementWith(html, 'data-testid="switch-prefixCache"');
    expect([...prefix.matchAll(/<span class="value[^"]*">([^<]*)<\/span>/g)].map((m) => m[1])).toEqual(['on', 'off']);
    expect(inputs(elementWith(html, 'data-testid="switch-sampler"')).filter((r) => 'disabled' in r)).toEqual([]);
    const paged = elementWith(panel({ settings: { ...settings, sampler: 'gpu', kvCache: 'paged' } }), 'data-testid="switch-sampler"');
    expect(inputs(paged).filter((r) => 'disabled' in r).map((r) => r.value)).toEqual(['gpu-sort', 'cpu']);
    expect(visibleText(paged)).toContain('cpu needs the contiguous KV cache');
  });

  it('disables values the adapter cannot run and shows why', () => {
    const html = panel();
    const formats = elementWith(html, 'data-testid="switch-weightFormat"');
    const disabled = inputs(formats).filter((r) => 'disabled' in r);
    expect(disabled.map((r) => r.value)).toEqual(['f16-native']);
    expect(formats).toMatch(/<label[^>]*data-value="f16-native"[^>]*title="needs shader-f16"/);
    expect(visibleText(formats)).toContain('f16-native needs shader-f16');
    const variants = elementWith(html, 'data-testid="switch-matvecVariant"');
    expect(inputs(variants).filter((r) => 'disabled' in r).map((r) => r.value)).toEqual(['subgroup']);
    expect(visibleText(variants)).toContain("subgroup needs the 'subgroups' feature");
  });

  it('disables every control while busy and marks the switch being applied', () => {
    const html = panel({ busy: true, pending: 'matvecVariant' });
    const radios = inputs(html);
    expect(radios.length).toBe(35);
    expect(radios.every((r) => 'disabled' in r)).toBe(true);
    expect(visibleText(elementWith(html, 'data-testid="switch-matvecVariant"'))).toContain('applying…');
    expect(visibleText(elementWith(html, 'data-testid="switch-weightFormat"'))).not.toContain('applying…');
    expect(visibleText(panel())).not.toContain('applying…');
  });

  it('offers the draft model only when one was given at load, and says why not', () => {
    const speculative = elementWith(panel(), 'data-testid="switch-speculative"');
    expect(inputs(speculative).filter((r) => 'disabled' in r).map((r) => r.value)).toEqual(['draft-model']);
    expect(visibleText(speculative)).toContain('draft-model needs a draft model given at load');
    expect(visibleText(speculative)).toContain('off one token per pass draft-q4 same model, 4-bit ngram prompt lookup');
  });

  it('lists the constraint as a request option with its value now, never as a radio control', () => {
    const entry = elementWith(panel({ request: { constraint: 'regex:[0-9]{3}' } }), 'data-testid="switch-constraint"');
    expect(inputs(entry)).toEqual([]);
    const text = visibleText(entry);
    expect(text).toContain('Constrained decoding per request, set under Generate · now regex [0-9]{3}');
    expect(text).toContain('off off json valid JSON regex PATTERN matches the pattern');
    expect(text).toContain(requestSwitches[0].explanation);
    expect(visibleText(elementWith(panel(), 'data-testid="switch-constraint"'))).toContain('now off');
    expect(constraintLabel('json')).toBe('json');
  });

  it('shows the last flip before → after with ratios', () => {
    const html = panel({
      before: { label: 'f32', tokensPerSecond: 100, weightBytes: 4e6, bytesPerToken: 4.2e6 },
      after: { label: 'q4_0', tokensPerSecond: 350, weightBytes: 562_500, bytesPerToken: 7e5 },
    });
    const line = visibleText(elementWith(html, 'data-testid="switch-comparison"'));
    expect(line).toContain('f32 → q4_0');
    expect(line).toContain('Decode speed 100 tok/s → 350 tok/s (3.50×)');
    expect(line).toContain('Weights on GPU 4.00 MB → 563 kB (0.14×)');
    expect(line).toContain('Bytes read per token 4.20 MB → 700 kB (0.17×)');
  });

  it('leaves the speed ratio out when one side has not run, and the comparison out without both sides', () => {
    const html = panel({
      before: { label: 'f32', tokensPerSecond: null, weightBytes: 2000, bytesPerToken: 3000 },
      after: { label: 'f16', tokensPerSecond: 12.34, weightBytes: 1000, bytesPerToken: 1500 },
    });
    const line = visibleText(elementWith(html, 'data-testid="switch-comparison"'));
    expect(line).toContain('Decode speed — → 12.3 tok/s Weights');
    expect(line).toContain('2.00 kB → 1.00 kB (0.50×)');
    expect(panel({ before: { label: 'f32', tokensPerSecond: 1, weightBytes: 1, bytesPerToken: 1 } })).not.toContain('switch-comparison');
  });
});
