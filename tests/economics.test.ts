import { describe, expect, it } from 'vitest';
import { costPerMillionTokens, rooflineFraction, rooflineTokensPerSecond } from '../src/app/economics.ts';

describe('costPerMillionTokens', () => {
  it('divides the hourly price by the tokens served in an hour', () => {
    // 1000 tok/s is 3.6 M tokens an hour: $3.60/h is $1 per million.
    expect(costPerMillionTokens(3.6, 1000)).toBeCloseTo(1, 12);
    expect(costPerMillionTokens(2.5, 50)).toBeCloseTo(2.5 / (50 * 3600) * 1e6, 9);
    expect(costPerMillionTokens(2.5, 50)).toBeCloseTo(13.8889, 4);
  });

  it('halves when throughput doubles', () => {
    expect(costPerMillionTokens(2, 200) * 2).toBeCloseTo(costPerMillionTokens(2, 100), 12);
  });

  it.each([
    [0, 10],
    [-1, 10],
    [Number.NaN, 10],
    [2.5, 0],
    [2.5, -3],
    [2.5, Number.NaN],
    [2.5, Number.POSITIVE_INFINITY],
  ])('rejects %s $/h at %s tok/s', (dollars, tokens) => {
    expect(() => costPerMillionTokens(dollars, tokens)).toThrow(RangeError);
  });
});

describe('rooflineTokensPerSecond', () => {
  it('is bandwidth over bytes per token', () => {
    // The knowledge base's 70B example: 140 GB per token at 3,350 GB/s is about 24 tokens/s.
    expect(rooflineTokensPerSecond(3350, 140e9)).toBeCloseTo(23.93, 2);
    expect(rooflineTokensPerSecond(100, 1e6)).toBe(100_000);
  });

  it('rejects a zero or negative size', () => {
    expect(() => rooflineTokensPerSecond(100, 0)).toThrow(RangeError);
    expect(() => rooflineTokensPerSecond(-1, 1e6)).toThrow(RangeError);
  });
});

describe('rooflineFraction', () => {
  it('is measured over the bound', () => {
    // Bound: 20 GB/s ÷ 2 MB = 10,000 tok/s; 2,500 measured is a quarter of it.
    expect(rooflineFraction(2500, 20, 2e6)).toBeCloseTo(0.25, 12);
    expect(rooflineFraction(0, 20, 2e6)).toBe(0);
  });

  it('rejects a negative or missing measurement', () => {
    expect(() => rooflineFraction(-1, 20, 2e6)).toThrow(RangeError);
    expect(() => rooflineFraction(Number.NaN, 20, 2e6)).toThrow(RangeError);
  });
});
