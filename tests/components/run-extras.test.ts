// The run's stats under the output: speculative decoding's acceptance, tokens per target pass and
// draft vs verify time, and a constraint's mask time next to the decode step it must stay small against.
import { render } from 'svelte/server';
import { describe, expect, it } from 'vitest';
import { elementWith, visibleText } from '../helpers/ssr.ts';
import Output from '../../src/app/components/Output.svelte';
import { Lab } from '../../src/app/lab.svelte.ts';
import { constraintStats, speculativeStats } from '../../src/app/run-stats.ts';
import type { GenerateResult } from '../../src/engine/engine.ts';

const result: GenerateResult = {
  tokens: [1, 2, 3],
  text: '{"a": 1}',
  promptTokens: 4,
  generatedTokens: 41,
  prefillMs: 12,
  decodeMs: 200,
  decodeTokensPerSecond: 200,
  stopReason: 'eos',
  speculative: { draft: 'ngram', draftTokens: 4, targetPasses: 16, proposed: 60, accepted: 45, acceptanceRate: 0.75, tokensPerTargetPass: 2.5625, draftMs: 30, verifyMs: 150 },
  constraint: { spec: 'json', maskCalls: 40, cacheHits: 31, maskMs: 8, maxMaskMs: 2.5, complete: true },
};

describe('run stats', () => {
  it('speculative decoding: acceptance, tokens per target pass, draft vs verify time', () => {
    expect(speculativeStats(result.speculative!)).toEqual([
      { name: 'Draft acceptance', value: '75.0%', note: '45 of 60 proposed by ngram, 4 per pass' },
      { name: 'Tokens per target pass', value: '2.56', note: '16 verification passes' },
      { name: 'Draft vs verify', value: '30.0 ms / 150 ms', note: 'drafting 16.7% of the two' },
    ]);
  });

  it('a constraint: mask time per step against the decode step, and whether the output is complete', () => {
    expect(constraintStats(result.constraint!, result)).toEqual([
      { name: 'Mask time', value: '200 µs / step', note: '8.00 ms over 40 masks, 31 from the cache, worst 2.50 ms; a decode step took 5.00 ms' },
      { name: 'Constraint', value: 'json', note: 'output complete' },
    ]);
    const stopped = constraintStats({ ...result.constraint!, complete: false, maskCalls: 0, maskMs: 0 }, { generatedTokens: 1, decodeMs: 0 });
    expect(stopped[0]).toEqual({ name: 'Mask time', value: '— / step', note: '0 µs over 0 masks, 31 from the cache, worst 2.50 ms' });
    expect(stopped[1].note).toBe('stopped before the output was complete');
  });

  it('Output shows them under the run metrics, and nothing when the run had neither', () => {
    const lab = new Lab('');
    lab.result = result;
    const extras = visibleText(elementWith(render(Output, { props: { lab } }).body, 'data-testid="run-extras"'));
    expect(extras).toBe(
      'Draft acceptance 75.0% 45 of 60 proposed by ngram, 4 per pass Tokens per target pass 2.56 16 verification passes Draft vs verify 30.0 ms / 150 ms drafting 16.7% of the two Mask time 200 µs / step 8.00 ms over 40 masks, 31 from the cache, worst 2.50 ms; a decode step took 5.00 ms Constraint json output complete',
    );
    lab.result = { ...result, speculative: undefined, constraint: undefined };
    expect(render(Output, { props: { lab } }).body).not.toContain('run-extras');
  });
});
