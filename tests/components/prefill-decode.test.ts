import { render } from 'svelte/server';
import { describe, expect, it } from 'vitest';
import { linearFit } from '../../src/app/charts/stats.ts';
import PrefillDecodePanel from '../../src/app/panels/PrefillDecodePanel.svelte';
import type { KernelTiming, StepProfile } from '../../src/engine/telemetry.ts';
import type { PromptSweepPoint } from '../../src/app/trace.ts';

function kernel(label: string, op: string, layer: number | null, ms: number, bytesRead = 0, flops = 0): KernelTiming {
  return { label, op, layer, ms, bytesRead, bytesWritten: 0, flops };
}

// Dispatch order of a two-layer model; the times add up to a 2.0 ms step.
const profile: StepProfile = {
  method: 'timestamp',
  resolutionMs: 0.001,
  repetitions: 20,
  position: 64,
  kernels: [
    kernel('embedding', 'embedding', null, 0.1),
    kernel('layers.0.attnNorm', 'rmsnorm', 0, 0.05),
    kernel('layers.0.wq', 'matvec', 0, 0.5, 3e6, 3e6),
    kernel('layers.0.attention', 'attention', 0, 0.2),
    kernel('layers.1.attnNorm', 'rmsnorm', 1, 0.05),
    kernel('layers.1.wq', 'matvec', 1, 0.5, 3e6, 3e6),
    kernel('layers.1.attention', 'attention', 1, 0.3),
    kernel('finalNorm', 'rmsnorm', null, 0.05),
    kernel('classifier', 'matvec', null, 0.2, 6e5, 3e5),
    kernel('sample', 'sample', null, 0.05),
  ],
  totalMs: 2.0,
  note: 'One timestamped pass per dispatch: kernels cannot overlap, so the step is slower than in generation.',
};

// TTFT = 10 ms + 10 ms per prompt token exactly; given out of order.
const sweep: PromptSweepPoint[] = [
  { promptTokens: 128, ttftMs: 1290, tpotMs: 11 },
  { promptTokens: 8, ttftMs: 90, tpotMs: 10 },
  { promptTokens: 32, ttftMs: 330, tpotMs: 10.5 },
];

const empty = { profile: null, sweep: [] as PromptSweepPoint[], prefill: null, busy: false };

function tableRows(body: string, testId: string): string[][] {
  const table = body.slice(body.indexOf(`data-testid="${testId}"`));
  const tbody = table.slice(table.indexOf('<tbody>'), table.indexOf('</tbody>'));
  return [...tbody.matchAll(/<tr>(.*?)<\/tr>/gs)].map((m) => [...m[1].matchAll(/<td[^>]*>(?:<span[^>]*><\/span>)?(.*?)<\/td>/g)].map((c) => c[1]));
}

describe('linearFit', () => {
  it('recovers an exact line and needs two distinct x values', () => {
    expect(linearFit([{ x: 1, y: 5 }, { x: 3, y: 9 }, { x: 4, y: 11 }])).toEqual({ slope: expect.closeTo(2, 12), intercept: expect.closeTo(3, 12), r2: expect.closeTo(1, 12) });
    const noisy = linearFit([{ x: 0, y: 0 }, { x: 1, y: 2 }, { x: 2, y: 1 }])!;
    expect(noisy.slope).toBeCloseTo(0.5, 12);
    expect(noisy.r2).toBeCloseTo(0.25, 12);
    expect(linearFit([{ x: 2, y: 1 }])).toBeNull();
    expect(linearFit([{ x: 2, y: 1 }, { x: 2, y: 3 }])).toBeNull();
  });
});

describe('PrefillDecodePanel', () => {
  it('lays out the kernels of one step in dispatch order, each as wide as its GPU time', () => {
    const { body } = render(PrefillDecodePanel, { props: { ...empty, profile } });
    const rects = [...body.matchAll(/<rect x="([^"]*)" y="0" width="([^"]*)"[^>]*><title>([^<]*)<\/title>/g)].map((m) => ({ x: Number(m[1]), width: Number(m[2]), title: m[3] }));
    expect(rects.map((r) => r.title)).toEqual(profile.kernels.map((k) => `${k.label} (${k.op}): ${(k.ms).toPrecision(3)} ms`));
    // Plot 600 px wide (640 − 20 − 20) for 2.0 ms: 300 px per ms.
    expect(rects[2]).toMatchObject({ x: expect.closeTo(0.15 * 300, 6), width: expect.closeTo(0.5 * 300, 6) });
    expect(rects.reduce((sum, r) => sum + r.width, 0)).toBeCloseTo(600, 6);
    expect(body).toContain('aria-label="GPU time of each of the 10 kernels of one decode step, in dispatch order, coloured by operation"');
    expect(body).toContain('GPU time into the step (ms), kernels in dispatch order');
  });

  it('stacks the step by layer, with kernels outside the layers as embed and head', () => {
    const { body } = render(PrefillDecodePanel, { props: { ...empty, profile } });
    const bars = [...body.matchAll(/<title>((?:embed|head|L\d+) [^<]*)<\/title>/g)].map((m) => m[1]);
    expect(bars).toEqual([
      'embed embedding: 0.100 ms',
      'L0 rmsnorm: 0.0500 ms',
      'L0 matvec: 0.500 ms',
      'L0 attention: 0.200 ms',
      'L1 rmsnorm: 0.0500 ms',
      'L1 matvec: 0.500 ms',
      'L1 attention: 0.300 ms',
      'head rmsnorm: 0.0500 ms',
      'head matvec: 0.200 ms',
      'head sample: 0.0500 ms',
    ]);
    for (const name of ['embed', 'L0', 'L1', 'head']) expect(body).toMatch(new RegExp(`dominant-baseline="hanging">${name}</text>`));
    expect(body).toContain('GPU time per layer of one decode step, stacked by operation');
  });

  it('totals each op with its share of the step and the rates its cost model implies', () => {
    const { body } = render(PrefillDecodePanel, { props: { ...empty, profile } });
    // matvec: 1.2 ms, 60% of 2.0 ms; (3e6 + 3e6 + 6e5) bytes / 1.2 ms / 1e6 = 5.50 GB/s; 6.3e6 flops → 5.25 GFLOP/s.
    expect(tableRows(body, 'op-table')).toEqual([
      ['matvec', '3', '1.20 ms', '60.0%', '5.50', '5.25'],
      ['attention', '2', '0.500 ms', '25.0%', '0', '0'],
      ['rmsnorm', '3', '0.150 ms', '7.5%', '0', '0'],
      ['embedding', '1', '0.100 ms', '5.0%', '0', '0'],
      ['sample', '1', '0.0500 ms', '2.5%', '0', '0'],
    ]);
    expect(body).toContain('2.00 ms');
  });

  it('states the method, repetitions, resolution, position and note of the profile', () => {
    const { body } = render(PrefillDecodePanel, { props: { ...empty, profile } });
    expect(body).toContain('Method: GPU timestamps, one timestamped compute pass per dispatch');
    expect(body).toContain('mean of 20 repetitions');
    expect(body).toContain('clock resolution 0.00100 ms');
    expect(body).toContain('up to position 64');
    expect(body).toContain(profile.note);
    const wall = render(PrefillDecodePanel, { props: { ...empty, profile: { ...profile, method: 'wall' } } }).body;
    expect(wall).toContain('Method: wall clock, each dispatch submitted and awaited on its own');
  });

  it('charts TTFT and TPOT against prompt length and fits the TTFT slope from the sweep', () => {
    const { body } = render(PrefillDecodePanel, { props: { ...empty, sweep } });
    const circles = [...body.matchAll(/<circle class="(ttft|tpot)[^"]*" cx="([^"]*)" cy="([^"]*)"[^>]*><title>([^<]*)<\/title>/g)].map((m) => ({ series: m[1], cx: Number(m[2]), cy: Number(m[3]), title: m[4] }));
    expect(circles.map((c) => c.title)).toEqual([
      '8 prompt tokens: TTFT 90.0 ms',
      '8 prompt tokens: TPOT 10.0 ms',
      '32 prompt tokens: TTFT 330 ms',
      '32 prompt tokens: TPOT 10.5 ms',
      '128 prompt tokens: TTFT 1,290 ms',
      '128 prompt tokens: TPOT 11.0 ms',
    ]);
    const ttft = circles.filter((c) => c.series === 'ttft');
    // Linear axes from 0: positions are proportional to the values (plot 212 px tall).
    expect(ttft[2].cx / ttft[0].cx).toBeCloseTo(128 / 8, 6);
    expect((212 - ttft[2].cy) / (212 - ttft[0].cy)).toBeCloseTo(1290 / 90, 6);
    expect(body).toContain('prompt length (tokens)');
    expect(body).toContain('aria-label="Time to first token and time per output token against prompt length, 3 prompt lengths"');

    // Prefill tok/s = prompt tokens ÷ TTFT: 8 / 0.09 s, 32 / 0.33 s, 128 / 1.29 s.
    expect(tableRows(body, 'sweep-table')).toEqual([
      ['8', '90.0 ms', '10.0 ms', '88.9'],
      ['32', '330 ms', '10.5 ms', '97.0'],
      ['128', '1,290 ms', '11.0 ms', '99.2'],
    ]);
    expect(body).toContain('TTFT ≈ 10.0 ms + 10.0 ms per prompt token (least-squares fit over 3 prompt lengths, r² = 1.000)');
    // Mean TPOT 10.5 ms: one prompt token costs 10 / 10.5 of a decode step.
    expect(body).toContain('The mean TPOT across the sweep is 10.5 ms, so one prompt token adds 0.95× the time of one decode step.');
  });

  it('shows the last run prefill speed as prompt tokens over prefill time', () => {
    const { body } = render(PrefillDecodePanel, { props: { ...empty, prefill: { promptTokens: 12, prefillMs: 60, decodeTokensPerSecond: 95.5 } } });
    expect(body).toContain('60.0 ms <small>for 12 prompt tokens</small>');
    expect(body).toContain('200 tok/s'); // 12 × 1000 / 60
    expect(body).toContain('95.5 tok/s');
  });

  it('explains empty data instead of drawing NaN', () => {
    const { body } = render(PrefillDecodePanel, { props: empty });
    expect(body).toContain('No profile yet');
    expect(body).toContain('No sweep yet');
    expect(body).not.toContain('<svg');
    expect(body).not.toContain('NaN');
    const one = render(PrefillDecodePanel, { props: { ...empty, sweep: sweep.slice(0, 1), prefill: { promptTokens: 0, prefillMs: 0, decodeTokensPerSecond: 0 } } }).body;
    expect(one).toContain('Sweep at least two different prompt lengths');
    expect(one).not.toContain('NaN');
    expect(one).not.toContain('Infinity');
    // A run without prompt tokens or decode steps has no rates: a dash, not "— tok/s" or "0 tok/s".
    expect(one).toMatch(/Prefill speed <small>[^<]*<\/small><\/dt> <dd>—<\/dd>/);
    expect(one).toMatch(/Decode speed<\/dt> <dd>—<\/dd>/);
  });

  it('disables the buttons while busy or without a handler', () => {
    const buttons = (props: object) => {
      const body = render(PrefillDecodePanel, { props: { ...empty, ...props } }).body;
      return ['profile-step', 'sweep-prompts'].map((id) => body.match(new RegExp(`<button[^>]*data-testid="${id}"[^>]*>`))![0].includes('disabled'));
    };
    const handlers = { onprofile: () => {}, onsweep: () => {} };
    expect(buttons({ ...handlers, busy: false })).toEqual([false, false]);
    expect(buttons({ ...handlers, busy: true })).toEqual([true, true]);
    expect(buttons({ busy: false })).toEqual([true, true]);
  });
});
