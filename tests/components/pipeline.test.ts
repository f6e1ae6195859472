import { render } from 'svelte/server';
import { describe, expect, it } from 'vitest';
import PipelinePanel from '../../src/app/panels/PipelinePanel.svelte';
import type { RequestSummary } from '../../src/app/server-timelines.ts';
import type { RequestTimeline } from '../../src/engine/timeline.ts';
import { servedTimeline, timelineToken } from '../helpers/timelines.ts';
import { elementWith, visibleText } from '../helpers/ssr.ts';

const token = (atMs: number, stepMs: number, step: number, batchRows: number) => timelineToken(atMs, stepMs, step, batchRows, 0.5);

/** 60 ms on the server: a 20 ms prefill, then three 10 ms decode steps of 3, 2 and 1 rows. */
const served = servedTimeline({ id: 'cmpl-abc', stream: false, detokenizeMs: 0.5 });

/** 30 ms in the page, speculative: after the first token, one pass that kept 2 tokens. */
const inPage: RequestTimeline = {
  id: '3',
  source: 'engine',
  endpoint: 'generate',
  stream: true,
  arrivedAt: 1_700_000_000_000,
  finished: true,
  outcome: 'stop',
  promptTokens: 12,
  cachedPromptTokens: 0,
  computedPromptTokens: 12,
  stages: [
    { name: 'tokenize', startMs: 0, endMs: 2 },
    { name: 'prefill', startMs: 2, endMs: 12 },
    { name: 'decode', startMs: 12, endMs: 27 },
    { name: 'respond', startMs: 27, endMs: 30 },
  ],
  tokens: [token(12, 10, 0, 1), token(27, 15, 1, 4), token(27, 0, 1, 4)],
};

const form = { server: { url: 'http://127.0.0.1:8080', apiKey: '' }, requests: [] as RequestSummary[], fetching: false, fetchError: null };

/** Each body row of the table as its cells' visible text, header cell first. */
function tableRows(body: string, testId: string): string[][] {
  const table = elementWith(body, `data-testid="${testId}"`);
  const tbody = table.slice(table.indexOf('<tbody>'), table.indexOf('</tbody>'));
  return [...tbody.matchAll(/<tr[^>]*>(.*?)<\/tr>/gs)].map((m) => [...m[1].matchAll(/<t[hd][^>]*>(.*?)<\/t[hd]>/gs)].map((c) => visibleText(c[1])));
}

/** The stage rects of one lane: name, x and width (px in the plot area). */
function stageRects(body: string, source: string): Array<{ name: string; x: number; width: number }> {
  const lane = elementWith(body, `data-source="${source}"`);
  return [...lane.matchAll(/<g class="stage" data-stage="([a-z]+)"><rect x="([^"]*)" y="0" width="([^"]*)"/g)].map((m) => ({ name: m[1], x: Number(m[2]), width: Number(m[3]) }));
}

describe('PipelinePanel', () => {
  it('says what to do when there is no request yet, and offers the server form', () => {
    const { body } = render(PipelinePanel, { props: { ...form, timeline: null } });
    expect(visibleText(elementWith(body, 'data-testid="pipeline-empty"'))).toContain('No request to follow yet');
    expect(body).not.toContain('data-testid="pipeline-chart"');
    expect(body).toContain('value="http://127.0.0.1:8080"');
    // Without callbacks the buttons cannot do anything.
    expect(elementWith(body, 'data-testid="pipeline-load-latest"')).toContain('disabled');
    expect(elementWith(body, 'data-testid="pipeline-list"')).toContain('disabled');
  });

  it("tables each stage's time and share, and the request's figures", () => {
    const { body } = render(PipelinePanel, { props: { ...form, timeline: served } });
    expect(tableRows(body, 'pipeline-stages')).toEqual([
      ['parse', '1.00 ms', '1.7%'],
      ['tokenize', '2.00 ms', '3.3%'],
      ['queue', '5.00 ms', '8.3%'],
      ['prefill', '20.0 ms', '33.3%'],
      ['decode', '30.0 ms', '50.0%'],
      ['respond', '2.00 ms', '3.3%'],
    ]);
    expect(tableRows(body, 'pipeline-figures')).toEqual([
      ['Prompt tokens', '12: 4 cached, 8 computed'],
      ['Generated tokens', '4'],
      ['Decode steps', '3'],
      ['Tokens per step', '1.00'],
      ['Rows per step, mean / max', '2.00 / 3'],
      ['TTFT', '28.0 ms'],
      ['Mean TPOT', '10.0 ms'],
      ['Detokenize, summed', '2.00 ms'],
      ['Writes, summed', '1.00 ms'],
      ['Total', '60.0 ms'],
    ]);
    expect(visibleText(elementWith(body, '<thead>'))).toBe('Stage server · completions share');
  });

  it('draws the stages end to end on the time axis and one bar per decode step, as tall as its rows', () => {
    const { body } = render(PipelinePanel, { props: { ...form, timeline: served } });
    // Plot area 504 px wide (640 − 112 − 24) for 60 ms: 8.4 px per ms.
    const rects = stageRects(body, 'server');
    expect(rects.map((r) => r.name)).toEqual(['parse', 'tokenize', 'queue', 'prefill', 'decode', 'respond']);
    expect(rects[3]).toEqual({ name: 'prefill', x: expect.closeTo(8 * 8.4, 6), width: expect.closeTo(20 * 8.4, 6) });
    expect(body).toContain('<title>prefill: 20.0 ms (33.3%)</title>');
    const steps = [...body.matchAll(/<rect class="step[^"]*" data-step="(\d+)" data-rows="(\d+)"[^>]*height="([^"]*)"/g)].map((m) => ({ step: Number(m[1]), rows: Number(m[2]), height: Number(m[3]) }));
    expect(steps).toEqual([
      { step: 6, rows: 3, height: 30 },
      { step: 7, rows: 2, height: 20 },
      { step: 8, rows: 1, height: 10 },
    ]);
    expect(body).toContain('<title>step 7: 10.0 ms, 2 rows, 1 token</title>');
    expect(body).not.toMatch(/class="step[^"]* speculative"/);
  });

  it('draws a second request on the same clock, with its own columns and its speculative pass marked', () => {
    const { body } = render(PipelinePanel, { props: { ...form, timeline: inPage, comparison: served } });
    expect(body).toContain('aria-label="Stages of 2 requests on a time axis');
    // Both lanes share the 60 ms scale: the page's 10 ms prefill starts at 2 ms.
    expect(stageRects(body, 'engine')[1]).toEqual({ name: 'prefill', x: expect.closeTo(2 * 8.4, 6), width: expect.closeTo(10 * 8.4, 6) });
    expect(stageRects(body, 'server')[4]).toEqual({ name: 'decode', x: expect.closeTo(28 * 8.4, 6), width: expect.closeTo(30 * 8.4, 6) });
    expect(body).toContain('<title>step 1: 15.0 ms, 4 rows, 2 tokens (a speculative pass)</title>');
    expect(body.match(/class="step[^"]* speculative"/g)).toHaveLength(1);

    const stages = tableRows(body, 'pipeline-stages');
    expect(stages.map((row) => row[0])).toEqual(['parse', 'tokenize', 'queue', 'prefill', 'decode', 'respond']);
    expect(stages[0]).toEqual(['parse', '—', '—', '1.00 ms', '1.7%']);
    expect(stages[3]).toEqual(['prefill', '10.0 ms', '33.3%', '20.0 ms', '33.3%']);
    const figures = tableRows(body, 'pipeline-figures');
    expect(figures[0]).toEqual(['Prompt tokens', '12: 0 cached, 12 computed', '12: 4 cached, 8 computed']);
    expect(figures[3]).toEqual(['Tokens per step', '2.00', '1.00']);
    expect(visibleText(elementWith(body, 'data-testid="pipeline-figures"'))).toContain('Request in-page engine server · completions');
  });

  it("lists the server's recent requests, marks a running request, and shows a fetch error", () => {
    const running = { ...served, finished: false, outcome: null, cachedPromptTokens: null, computedPromptTokens: null };
    const requests: RequestSummary[] = [
      { id: 'cmpl-new', endpoint: 'chat.completions', stream: true, arrivedAt: 1_700_000_001_000, finished: false, outcome: null, promptTokens: 40, generatedTokens: 3 },
      { id: 'cmpl-abc', endpoint: 'completions', stream: false, arrivedAt: 1_700_000_000_000, finished: true, outcome: 'length', promptTokens: 12, generatedTokens: 4 },
    ];
    const { body } = render(PipelinePanel, {
      props: { ...form, timeline: running, requests, fetchError: 'http://127.0.0.1:8080/v1/requests answered 401: incorrect API key provided', onfetch: () => {}, onfetchlist: () => {} },
    });
    const picker = elementWith(body, 'data-testid="pipeline-recent"');
    const options = [...picker.matchAll(/<option value="([^"]*)"[^>]*>(.*?)<\/option>/g)].map((m) => [m[1], m[2]]);
    expect(options.map(([id]) => id)).toEqual(['', 'cmpl-new', 'cmpl-abc']);
    expect(options[1][1]).toMatch(/ · chat\.completions · 40 prompt \+ 3 generated · running$/);
    expect(options[2][1]).toMatch(/ · completions · 12 prompt \+ 4 generated · length$/);
    expect(visibleText(body)).toContain('Recent requests (2)');
    expect(visibleText(elementWith(body, 'data-testid="pipeline-fetch-error"'))).toBe('http://127.0.0.1:8080/v1/requests answered 401: incorrect API key provided');
    expect(tableRows(body, 'pipeline-figures')[0]).toEqual(['Prompt tokens', '12 (cached share not known yet)']);
    expect(visibleText(elementWith(body, 'data-testid="pipeline-stages"'))).toContain('server · completions, running');
    expect(elementWith(body, 'data-testid="pipeline-load-latest"')).not.toContain('disabled');
  });
});
