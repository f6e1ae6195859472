import { render } from 'svelte/server';
import { describe, expect, it } from 'vitest';
import { visibleText } from '../helpers/ssr.ts';
import EconomicsPanel from '../../src/app/panels/EconomicsPanel.svelte';


const base = {
  tokensPerSecond: 50,
  bytesPerToken: 1e6,
  probeGBps: 10,
  dollarsPerHour: 2.5,
  referenceGpu: 'h100-sxm' as const,
};

describe('EconomicsPanel', () => {
  it('prices the measured speed at the given $/hour and writes the formula out', () => {
    const { body } = render(EconomicsPanel, { props: base });
    const shown = visibleText(body);
    // 2.50 / (50 × 3600) × 1e6 = 13.888…
    expect(shown).toContain('$13.89 per million tokens');
    expect(shown).toContain('$2.50/h ÷ (50.0 tok/s × 3,600 s/h) × 1,000,000 = $13.89');
  });

  it('shows the share of this GPU’s own bandwidth bound', () => {
    // 10 GB/s ÷ 1 MB = 10,000 tok/s; 50 measured is 0.5% of it.
    const shown = visibleText(render(EconomicsPanel, { props: base }).body);
    expect(shown).toContain('10.0 GB/s (probe) ÷ 1.00 MB per token = 10,000 tok/s');
    expect(shown).toContain('is 0.5% of it');
  });

  it('labels the H100 projection as reference figures with its formula and source', () => {
    const shown = visibleText(render(EconomicsPanel, { props: base }).body);
    expect(shown).toContain('NVIDIA H100 SXM reference figures, not measured here');
    expect(shown).toContain('projection (batch 1, weights streamed once per token, no overheads)');
    // 3,350 GB/s ÷ 1 MB = 3,350,000 tok/s, 335× the 10 GB/s probe.
    expect(shown).toContain('HBM3 3,350 GB/s ÷ 1.00 MB per token = 3,350,000 tok/s');
    expect(shown).toContain('335× the bandwidth measured on this adapter');
    // At the $2.50/h reference rental: 2.5 / (3.35e6 × 3600) × 1e6 = $0.000207.
    expect(shown).toContain('= $0.000207 per million tokens');
    expect(shown).toContain('inference-knowledge-base.md');
  });

  it('uses the chosen reference GPU, and the reader’s price where the docs give none', () => {
    const shown = visibleText(render(EconomicsPanel, { props: { ...base, referenceGpu: 'a100-80gb', dollarsPerHour: 3.6 } }).body);
    // 2,000 GB/s ÷ 1 MB = 2,000,000 tok/s; at $3.60/h that is 3.6 / 7.2e9 × 1e6 = $0.0005.
    expect(shown).toContain('HBM2e 2,000 GB/s ÷ 1.00 MB per token = 2,000,000 tok/s');
    expect(shown).toContain('= $0.000500 per million tokens');
    expect(shown).toContain('no rental price for the NVIDIA A100 80 GB');
  });

  it('charts and tabulates each measured run against its projection', () => {
    const runs = [
      { label: 'f32 · naive', tokensPerSecond: 10, bytesPerToken: 4e6 },
      { label: 'q4_0 · subgroup', tokensPerSecond: 40, bytesPerToken: 1e6 },
    ];
    const { body } = render(EconomicsPanel, { props: { ...base, runs } });
    const shown = visibleText(body);
    // $2.50 / (10 × 3600) × 1e6 = $69.44; at 40 tok/s, $17.36.
    expect(shown).toContain('$69.44');
    expect(shown).toContain('$17.36');
    expect(shown).toContain('f32 · naive');
    expect(shown).toContain('q4_0 · subgroup');
    // Two runs, a measured and a projected bar each.
    expect(body.match(/class="bar measured/g)).toHaveLength(2);
    expect(body.match(/class="bar projected/g)).toHaveLength(2);
    // Own bound of the f32 run: 10 GB/s ÷ 4 MB = 2,500 tok/s, 10 measured is 0.4%.
    expect(shown).toContain('0.4%');
  });

  it('escapes run labels', () => {
    const runs = [{ label: '<img src=x onerror=alert(1)>', tokensPerSecond: 10, bytesPerToken: 1e6 }];
    const { body } = render(EconomicsPanel, { props: { ...base, runs } });
    expect(body).not.toContain('<img');
    expect(body).toContain('&lt;img');
  });

  it('renders without a measurement and without NaN', () => {
    const { body } = render(EconomicsPanel, { props: { ...base, tokensPerSecond: null } });
    const shown = visibleText(body);
    expect(shown).toContain('No decode speed measured yet');
    expect(shown).toContain('Runs appear here once they are measured');
    expect(body).not.toMatch(/NaN|Infinity|undefined/);
    // The projection needs no measurement.
    expect(shown).toContain('3,350,000 tok/s');
  });

  it('refuses to price at a zero price instead of showing Infinity', () => {
    const { body } = render(EconomicsPanel, { props: { ...base, dollarsPerHour: 0 } });
    expect(visibleText(body)).toContain('Set a price above zero');
    expect(body).not.toMatch(/NaN|Infinity/);
  });
});
