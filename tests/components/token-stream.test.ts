import { render } from 'svelte/server';
import { describe, expect, it } from 'vitest';
import TokenStream from '../../src/app/components/TokenStream.svelte';

/** The rendered token spans, in order: their title and inline style. */
function tokenSpans(body: string): Array<{ title: string; style: string | null; text: string }> {
  const stream = body.slice(body.indexOf('class="tokens'), body.indexOf('class="legend'));
  return [...stream.matchAll(/<span class="token[^"]*" title="([^"]*)"(?: style="([^"]*)")?>([^<]*)<\/span>/g)].map((m) => ({
    title: m[1],
    style: m[2] ?? null,
    text: m[3],
  }));
}

describe('TokenStream', () => {
  const tokens = [
    { text: 'Once', stepMs: 40 },
    { text: ' upon', stepMs: 10 },
    { text: ' a', stepMs: 20 },
    { text: ' time', stepMs: 12.5 },
  ];

  it('renders one span per token with its step time, the first marked as including the prefill', () => {
    const { body } = render(TokenStream, { props: { tokens, generating: false } });
    expect(body).toContain('data-testid="token-stream"');
    const spans = tokenSpans(body);
    expect(spans.map((s) => s.text)).toEqual(['Once', ' upon', ' a', ' time']);
    expect(spans.map((s) => s.title)).toEqual([
      'first token: 40.0 ms, includes the prefill',
      'decode step: 10.0 ms',
      'decode step: 20.0 ms',
      'decode step: 12.5 ms',
    ]);
    expect(body).toMatch(/<span class="token first[^"]*" title="first token/);
    expect(body).not.toContain('▍');
  });

  it('tints decode steps from the fastest (light yellow) to the slowest (dark red), leaving the prefill out of the range', () => {
    const { body } = render(TokenStream, { props: { tokens, generating: false } });
    const spans = tokenSpans(body);
    // The first token (40 ms) is slower than every decode step but takes no tint and sets no bound.
    expect(spans[0].style).toBeNull();
    expect(spans[1].style).toBe('background-color: rgba(255, 255, 204, 0.55);'); // YlOrRd(0): 10 ms
    expect(spans[2].style).toBe('background-color: rgba(128, 0, 38, 0.55);'); // YlOrRd(1): 20 ms
    expect(spans[3].style).not.toBe(spans[1].style);
    expect(body).toContain('fast 10.0 ms');
    expect(body).toContain('20.0 ms slow');
    expect(body).toContain('first</span> token includes the prefill: 40.0 ms');
  });

  it('renders model text as text, never as HTML', () => {
    const { body } = render(TokenStream, { props: { tokens: [{ text: 'A', stepMs: 5 }, { text: ' <b>x</b> & <script>', stepMs: 4 }], generating: false } });
    expect(body).toContain('&lt;b>x&lt;/b> &amp; &lt;script>');
    expect(body).not.toContain('<b>');
    expect(body).not.toContain('<script>');
  });

  it('shows a caret while generating', () => {
    const { body } = render(TokenStream, { props: { tokens: tokens.slice(0, 2), generating: true } });
    expect(body).toContain('▍');
  });

  it('explains an empty stream instead of drawing a scale', () => {
    const idle = render(TokenStream, { props: { tokens: [], generating: false } }).body;
    expect(idle).toContain('No output yet');
    expect(idle).not.toContain('NaN');
    expect(idle).not.toContain('class="ramp');
    const waiting = render(TokenStream, { props: { tokens: [], generating: true } }).body;
    expect(waiting).toContain('Waiting for the first token');
  });

  it('shows a lone first token without a decode scale', () => {
    const { body } = render(TokenStream, { props: { tokens: [{ text: 'Hi', stepMs: 33 }], generating: false } });
    expect(tokenSpans(body).map((s) => s.title)).toEqual(['first token: 33.0 ms, includes the prefill']);
    expect(body).not.toContain('class="ramp');
    expect(body).not.toContain('NaN');
  });
});
