import { describe, expect, it } from 'vitest';
import { choicesFromQuery, defaultModelId } from '../src/app/models.ts';
import { formatUrlState, parseUrlState, urlDefaults, type LabUrlState } from '../src/app/url-state.ts';

describe('parseUrlState', () => {
  it('reads every field', () => {
    const state = parseUrlState(
      '?model=stories260K/stories260K.gguf&weightFormat=q4_0&matvecVariant=splitK&sampler=cpu&prompt=Once%20upon&maxTokens=64&temperature=0.8&seed=7&panels=memory,workbench&presenter=1&step=3&trace=traces/h100.json',
    );
    expect(state).toEqual({
      model: 'stories260K/stories260K.gguf',
      settings: { weightFormat: 'q4_0', matvecVariant: 'splitK', sampler: 'cpu' },
      prompt: 'Once upon',
      maxTokens: 64,
      temperature: 0.8,
      seed: 7,
      panels: ['memory', 'workbench'],
      presenter: true,
      step: 3,
      trace: 'traces/h100.json',
    });
  });

  it('ignores unknown keys and an empty query', () => {
    expect(parseUrlState('?colour=blue&x=1')).toEqual({ settings: {} });
    expect(parseUrlState('')).toEqual({ settings: {} });
    expect(parseUrlState('model=a.bin')).toEqual({ model: 'a.bin', settings: {} });
  });

  it('drops numbers that do not parse or are out of range, without throwing', () => {
    const bad = ['maxTokens=abc', 'maxTokens=0', 'maxTokens=3.5', 'maxTokens=12abc', 'maxTokens=', 'temperature=-1', 'temperature=NaN', 'temperature=Infinity', 'temperature=', 'seed=-1', 'seed=4294967296', 'seed=1e3', 'step=-2', 'step=x'];
    for (const pair of bad) expect(parseUrlState(`?${pair}`), pair).toEqual({ settings: {} });
    expect(parseUrlState('?seed=4294967295&temperature=1.5e-1&maxTokens=1').seed).toBe(4_294_967_295);
    expect(parseUrlState('?temperature=1.5e-1').temperature).toBe(0.15);
  });

  it('drops setting values that cannot be setting names', () => {
    expect(parseUrlState('?sampler=tpu&weightFormat=<script>&matvecVariant=').settings).toEqual({});
    expect(parseUrlState('?weightFormat=f16-native').settings).toEqual({ weightFormat: 'f16-native' });
  });

  it('reads the KV cache switches, dropping values the engine has no such setting for', () => {
    expect(parseUrlState('?kvCache=paged&pageSize=32&prefixCache=0&attention=splitK').settings).toEqual({ kvCache: 'paged', pageSize: 32, prefixCache: false, attention: 'splitK' });
    expect(parseUrlState('?prefixCache=1&pageSize=8&attention=unfused').settings).toEqual({ prefixCache: true, pageSize: 8, attention: 'unfused' });
    const bad = ['kvCache=ring', 'kvCache=', 'pageSize=12', 'pageSize=16.0', 'pageSize=0x10', 'pageSize=-16', 'prefixCache=yes', 'attention=flash', 'attention=FUSED'];
    for (const pair of bad) expect(parseUrlState(`?${pair}`).settings, pair).toEqual({});
  });

  it('reads the sort sampler and the speculative switches, dropping what the engine has no value for', () => {
    expect(parseUrlState('?sampler=gpu-sort&speculative=ngram&draftTokens=6').settings).toEqual({ sampler: 'gpu-sort', speculative: 'ngram', draftTokens: 6 });
    expect(parseUrlState('?speculative=draft-model&draftTokens=1').settings).toEqual({ speculative: 'draft-model', draftTokens: 1 });
    const bad = ['sampler=gpu_sort', 'speculative=on', 'speculative=', 'draftTokens=0', 'draftTokens=9', 'draftTokens=2.5', 'draftTokens=x'];
    for (const pair of bad) expect(parseUrlState(`?${pair}`).settings, pair).toEqual({});
  });

  it('reads the request cuts and the constraint, dropping values the engine would refuse', () => {
    expect(parseUrlState('?topK=40&topP=0.9&minP=0.05&constraint=json')).toEqual({ settings: {}, topK: 40, topP: 0.9, minP: 0.05, constraint: 'json' });
    expect(parseUrlState('?constraint=regex:[0-9]{3}-[0-9]{4}').constraint).toBe('regex:[0-9]{3}-[0-9]{4}');
    expect(parseUrlState(`?constraint=${encodeURIComponent('regex:a&b=c?')}`).constraint).toBe('regex:a&b=c?');
    const bad = ['topK=-1', 'topK=2.5', 'topP=0', 'topP=1.5', 'topP=x', 'minP=-0.1', 'minP=2', 'constraint=xml', 'constraint=regex:', 'constraint='];
    for (const pair of bad) expect(parseUrlState(`?${pair}`), pair).toEqual({ settings: {} });
  });

  it('reads presenter as a flag and panels as a list of ids', () => {
    expect(parseUrlState('?presenter').presenter).toBe(true);
    expect(parseUrlState('?presenter=true').presenter).toBe(true);
    expect(parseUrlState('?presenter=0').presenter).toBe(false);
    expect(parseUrlState('?presenter=maybe').presenter).toBeUndefined();
    expect(parseUrlState('?panels=memory,,bad%20id,profile').panels).toEqual(['memory', 'profile']);
    expect(parseUrlState('?panels=').panels).toEqual([]);
  });

  it('keeps an empty tokenizer, which models.ts reads as "the model carries its own"', () => {
    expect(parseUrlState('?model=x.bin&tokenizer=')).toEqual({ model: 'x.bin', tokenizer: '', settings: {} });
  });
});

describe('formatUrlState', () => {
  it('leaves defaults out', () => {
    expect(formatUrlState({ settings: {} })).toBe('');
    const allDefaults: LabUrlState = {
      model: defaultModelId,
      settings: { ...urlDefaults.settings },
      prompt: '',
      maxTokens: 200,
      temperature: 0,
      seed: 42,
      topK: 0,
      topP: 1,
      minP: 0,
      constraint: '',
      presenter: false,
      step: 0,
    };
    expect(formatUrlState(allDefaults)).toBe('');
    expect(formatUrlState({ ...allDefaults, seed: 43 })).toBe('?seed=43');
  });

  it('writes a readable query in a fixed order', () => {
    const query = formatUrlState({
      trace: 'traces/a.json',
      step: 2,
      presenter: true,
      settings: { sampler: 'cpu', weightFormat: 'q4_0' },
      model: 'stories260K/stories260K.gguf',
      panels: ['memory', 'workbench'],
      prompt: 'Once upon a time',
    });
    expect(query).toBe('?model=stories260K/stories260K.gguf&weightFormat=q4_0&sampler=cpu&prompt=Once%20upon%20a%20time&panels=memory,workbench&presenter=1&step=2&trace=traces/a.json');
  });

  it('writes the KV cache switches after the sampler, prefix cache as a flag, defaults left out', () => {
    expect(formatUrlState({ settings: { attention: 'unfused', prefixCache: false, pageSize: 8, kvCache: 'paged', sampler: 'gpu' } })).toBe('?kvCache=paged&pageSize=8&prefixCache=0&attention=unfused');
    expect(formatUrlState({ settings: { kvCache: 'contiguous', pageSize: 16, prefixCache: true, attention: 'fused' } })).toBe('');
  });

  it('writes the new switches and the request options after their neighbours, defaults left out', () => {
    expect(formatUrlState({ settings: { draftTokens: 2, speculative: 'draft-q4', sampler: 'gpu-sort' }, constraint: 'regex:[a-z]+ ok', minP: 0.1, topK: 5, seed: 1 })).toBe(
      '?sampler=gpu-sort&speculative=draft-q4&draftTokens=2&seed=1&topK=5&minP=0.1&constraint=regex:%5Ba-z%5D%2B%20ok',
    );
    expect(formatUrlState({ settings: { speculative: 'off', draftTokens: 4 }, topK: 0, topP: 1, minP: 0, constraint: '' })).toBe('');
  });

  it('round-trips any state whose values are not defaults', () => {
    const states: LabUrlState[] = [
      {
        model: 'custom/model.gguf',
        tokenizer: '',
        settings: { weightFormat: 'f16', matvecVariant: 'multiRow', sampler: 'cpu', kvCache: 'paged', pageSize: 32, prefixCache: false, attention: 'splitK' },
        prompt: 'a & b = c? #1 +x, /y 100%\nnext line — “quoted”',
        maxTokens: 1,
        temperature: 1.25,
        seed: 0,
        panels: [],
        presenter: true,
        step: 7,
        trace: 'https://example.org/t.json?x=1&y=2',
      },
      { settings: { matvecVariant: 'naive' }, temperature: 1e-7 },
      { settings: { sampler: 'gpu-sort', speculative: 'ngram', draftTokens: 8 }, topK: 40, topP: 0.95, minP: 0.02, constraint: 'regex:(a|b)*&c=d?,e' },
      { settings: {}, constraint: 'json' },
      { settings: {}, panels: ['optimizations'] },
    ];
    for (const state of states) expect(parseUrlState(formatUrlState(state))).toEqual(state);
  });

  it('stays readable by models.ts, which owns the model and tokenizer parameters', () => {
    const query = formatUrlState({ model: 'mine/tiny.bin', tokenizer: '', settings: { weightFormat: 'q8_0' } });
    const { choices, selected } = choicesFromQuery(query);
    expect(selected).toBe('mine/tiny.bin');
    expect(choices.find((c) => c.id === selected)).toEqual({ id: 'mine/tiny.bin', label: 'mine/tiny.bin (from the URL)', entry: 'mine/tiny.bin' });
    expect(choicesFromQuery(formatUrlState({ model: 'stories260K/stories260K.gguf', settings: {} })).selected).toBe('stories260K/stories260K.gguf');
  });
});
