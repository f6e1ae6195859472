import { render } from 'svelte/server';
import { describe, expect, it } from 'vitest';
import SamplingPanel from '../../src/app/panels/SamplingPanel.svelte';
import type { KeptCandidates, StepDistribution } from '../../src/engine/telemetry.ts';
import { elementWith, visibleText } from '../helpers/ssr.ts';

/** Cells of the candidate table row for `token`, as text. */
function row(body: string, token: number): string[] {
  const match = body.match(new RegExp(`<tr[^>]*data-token="${token}"[^>]*>([\\s\\S]*?)</tr>`));
  if (!match) throw new Error(`no row for token ${token}`);
  return [...match[1].matchAll(/<td[^>]*>([\s\S]*?)<\/td>/g)].map((m) =>
    m[1]
      .replace(/<!--[\s\S]*?-->/g, '')
      .replace(/<[^>]+>/g, '')
      .trim(),
  );
}

// logSumExp = 2 + ln 2, so the top candidate (logit 2) has probability exactly 1/2 over the vocabulary,
// and logit l has e^(l − 2) / 2: 18.4% for 1, 6.8% for 0, 2.5% for −1.
const distribution: StepDistribution = {
  position: 7,
  candidates: [
    { token: 10, piece: ' the', logit: 2 },
    { token: 11, piece: '\n', logit: 1 },
    { token: 12, piece: '<b>x</b>', logit: 0 },
    { token: 13, piece: 'a', logit: -1 },
  ],
  sampled: 11,
  temperature: 1,
  logSumExp: 2 + Math.log(2),
};

describe('SamplingPanel', () => {
  it('shows exact probabilities at T = 1 from the logits and logSumExp', () => {
    const { body } = render(SamplingPanel, { props: { distribution, temperature: 1 } });
    expect(row(body, 10).slice(3, 5)).toEqual(['2.00', '50.0%']);
    expect(row(body, 11)[4]).toBe('18.4%');
    expect(row(body, 12)[4]).toBe('6.8%');
    expect(row(body, 13)[4]).toBe('2.5%');
    // 0.5 + 0.1839 + 0.0677 + 0.0249 of the vocabulary's mass is shown.
    expect(body).toContain('hold 77.7% of the probability at T = 1');
    expect(body).not.toContain('renormalized over the top');
  });

  it('renormalizes the temperature-scaled distribution over the shown candidates and says so', () => {
    const { body } = render(SamplingPanel, { props: { distribution, temperature: 2 } });
    // softmax([2, 1, 0, −1] / 2) = 45.5%, 27.6%, 16.7%, 10.2%.
    expect(row(body, 10)[5]).toBe('45.5%');
    expect(row(body, 11)[5]).toBe('27.6%');
    expect(row(body, 12)[5]).toBe('16.7%');
    expect(row(body, 13)[5]).toBe('10.2%');
    // T = 1 stays exact next to it; the cumulative column reaches 100% over the shown set.
    expect(row(body, 10)[4]).toBe('50.0%');
    expect(row(body, 13)[6]).toBe('100.0%');
    expect(body).toContain('T = 2, renormalized over the top 4 shown');
    expect(body).toContain('This step was sampled at T = 1.');
  });

  it('gives the argmax probability 1 at T = 0', () => {
    const { body } = render(SamplingPanel, { props: { distribution, temperature: 0 } });
    expect(row(body, 10)[5]).toBe('100.0%');
    expect(row(body, 11)[5]).toBe('0%');
    expect(body).toContain('T = 0 (greedy)');
  });

  it('marks the sampled token', () => {
    const { body } = render(SamplingPanel, { props: { distribution, temperature: 1 } });
    expect(row(body, 11)[2]).toContain('◀ sampled');
    expect(row(body, 10)[2]).not.toContain('sampled');
    expect(body).toMatch(/<tr(?=[^>]*data-token="11")(?=[^>]*class="[^"]*\bsampled\b)[^>]*>/);
    expect(body).not.toMatch(/<tr(?=[^>]*data-token="10")(?=[^>]*class="[^"]*\bsampled\b)[^>]*>/);
    expect(body).toMatch(/<g class="candidate[^"]*\bsampled\b/);
  });

  it('says when the sampled token is not among the candidates shown', () => {
    const { body } = render(SamplingPanel, { props: { distribution: { ...distribution, sampled: 99 }, temperature: 1 } });
    expect(body).toContain('The sampled token (99) is outside the 4 candidates shown');
  });

  it('shows whitespace visibly and escapes HTML in pieces', () => {
    const { body } = render(SamplingPanel, { props: { distribution, temperature: 1 } });
    expect(row(body, 10)[2]).toBe('␣the');
    expect(row(body, 11)[2]).toMatch(/^↵/);
    expect(body).not.toContain('<b>');
    expect(body).toContain('&lt;b>x&lt;/b>');
  });

  it('keeps the top-k set and renormalizes it', () => {
    const { body } = render(SamplingPanel, { props: { distribution, temperature: 1, topK: 2 } });
    // 0.5 and 0.1839 divided by their sum 0.6839.
    expect(row(body, 10)[6]).toBe('73.1%');
    expect(row(body, 11)[6]).toBe('26.9%');
    expect(row(body, 12)[6]).toBe('dropped');
    expect(body).toContain('Kept 2 of 4 shown');
    expect(body).toContain('data-testid="top-k-line"');
    expect(body).not.toContain('data-testid="top-p-line"');
  });

  it('keeps the smallest set reaching top-p', () => {
    // At T = 2 the cumulative mass is 45.5%, 73.1%, …: p = 0.6 keeps two.
    const { body } = render(SamplingPanel, { props: { distribution, temperature: 2, topP: 0.6 } });
    expect(row(body, 10)[7]).toBe('62.2%');
    expect(row(body, 11)[7]).toBe('37.8%');
    expect(row(body, 12)[7]).toBe('dropped');
    expect(body).toContain('data-testid="top-p-line"');
  });

  it('says when top-p lies beyond the shown candidates', () => {
    // Exact T = 1 mass of the four shown is 77.7% < 90%.
    const { body } = render(SamplingPanel, { props: { distribution, temperature: 1, topP: 0.9 } });
    expect(body).toContain('is not reached within the candidates shown');
    expect(body).toContain('Kept 4 of 4 shown');
  });

  it('draws no cutoffs when none are given', () => {
    const { body } = render(SamplingPanel, { props: { distribution, temperature: 1 } });
    expect(body).not.toContain('class="cutoff"');
    expect(body).not.toContain('Kept, renormalized');
  });

  it('renders an empty state without a distribution, and without NaN', () => {
    for (const empty of [null, { ...distribution, candidates: [] }]) {
      const { body } = render(SamplingPanel, { props: { distribution: empty, temperature: 1 } });
      expect(body).toContain('turn on “inspect distribution” and generate');
      expect(body).not.toMatch(/NaN|undefined/);
    }
  });

  it('refuses an invalid cutoff instead of coercing it', () => {
    const { body } = render(SamplingPanel, { props: { distribution, temperature: 1, topK: 0 } });
    expect(body).toContain('top-k must be a whole number ≥ 1 (got 0)');
  });

  describe('the kept set from the sampler', () => {
    // Three kept tokens with weights 1, e^-1, e^-2 relative to the top one (logits 2, 1, 0 at T = 1):
    // renormalized 66.5%, 24.5%, 9.0%; top-p's edge is the third token's weight e^-2.
    const weights = [1, Math.exp(-1), Math.exp(-2)];
    const total = weights.reduce((a, b) => a + b, 0);
    const kept: KeptCandidates = {
      count: 3,
      tokens: [10, 11, 12],
      probabilities: weights.map((w) => w / total),
      cumulative: [weights[0] / total, (weights[0] + weights[1]) / total, 1],
      keptMass: 0.7512,
      topKLogit: null,
      topPWeight: Math.exp(-2),
      minWeight: Math.exp(-2),
    };

    it('draws each kept probability, the cumulative curve and the top-p edge as the probability it stands for', () => {
      const { body } = render(SamplingPanel, { props: { distribution: { ...distribution, kept }, temperature: 1 } });
      const chart = elementWith(body, 'data-testid="kept-chart"');
      expect(visibleText(chart)).toContain('The sampler kept 3 tokens, holding 75.1% of the distribution at T = 1; the draw renormalizes them to 100%.');
      expect([...chart.matchAll(/<title>([^<]*)<\/title>/g)].map((m) => m[1])).toEqual(['␣the: 66.5%, cumulative 66.5%', '↵: 24.5%, cumulative 91.0%', '&lt;b>x&lt;/b>: 9.0%, cumulative 100.0%']);
      // The edge weight e^-2 of the top token's 66.5% is the third token's 9.0%.
      expect(visibleText(chart)).toContain('top-p edge 9.0%');
      expect(visibleText(chart)).toContain("top-p edge: weight ≥ 0.135 × the top token's");
      expect(chart).toContain('data-testid="kept-top-p"');
      // min-p adds nothing beyond top-p's floor here, so it gets no line of its own.
      expect(chart).not.toContain('data-testid="kept-min-p"');
      // The sampled token's bar is marked; the curve has one point per bar, ending at 100% (y = 0).
      expect(chart.match(/class="bar scaled[^"]*"/g)!.map((c) => c.includes('sampled-bar'))).toEqual([false, true, false]);
      const points = /<polyline class="cumulative[^"]*" points="([^"]*)"/.exec(chart)![1].split(' ');
      expect(points).toHaveLength(3);
      expect(points[2].split(',')[1]).toBe('0.0');
      expect(chart).not.toMatch(/NaN|undefined/);
    });

    it('marks a min-p floor above the top-p edge and a top-k logit, and says when the list stops early', () => {
      const cut: KeptCandidates = { ...kept, count: 1234, cumulative: [0.3, 0.4, 0.45], topKLogit: 0.5, topPWeight: 0.1, minWeight: 0.2 };
      const chart = elementWith(render(SamplingPanel, { props: { distribution: { ...distribution, kept: cut }, temperature: 1 } }).body, 'data-testid="kept-chart"');
      expect(visibleText(chart)).toContain('The sampler kept 1234 tokens (only the 3 most likely are listed, holding 45.0% of the kept mass), holding 75.1%');
      expect(visibleText(chart)).toContain('Top-k cut below logit 0.50.');
      expect(chart).toContain('data-testid="kept-top-p"');
      expect(chart).toContain('data-testid="kept-min-p"');
      // 0.2 of the top token's 66.5%.
      expect(visibleText(chart)).toContain('min-p floor 13.3%');
    });

    it('is absent when the step carries no kept set', () => {
      expect(render(SamplingPanel, { props: { distribution, temperature: 1 } }).body).not.toContain('kept-chart');
    });
  });
});
