// The request options next to temperature: the cuts (top-k, top-p, min-p) and the constraint, as
// the Generate controls show them, as the URL carries them, and as the request sends them.
import { render } from 'svelte/server';
import { describe, expect, it } from 'vitest';
import { visibleText } from '../helpers/ssr.ts';
import Controls from '../../src/app/components/Controls.svelte';
import { Lab } from '../../src/app/lab.svelte.ts';

/** The opening tag of the element with data-testid `id`. */
function tag(html: string, id: string): string {
  const match = new RegExp(`<[a-z]+[^>]*data-testid="${id}"[^>]*>`).exec(html);
  if (!match) throw new Error(`no element ${id}`);
  return match[0];
}

describe('request options', () => {
  it('come from the URL, show in the controls, and go into the request only when on', () => {
    const lab = new Lab('?topK=40&topP=0.9&constraint=regex:[0-9]{3}-[0-9]{4}');
    expect(lab.requestCuts).toEqual({ topK: 40, topP: 0.9, constraint: 'regex:[0-9]{3}-[0-9]{4}' });
    const html = render(Controls, { props: { lab } }).body;
    expect(tag(html, 'top-k')).toContain('value="40"');
    expect(tag(html, 'top-p')).toContain('value="0.9"');
    expect(tag(html, 'min-p')).toContain('value="0"');
    expect(html).toMatch(/<option value="regex"[^>]*selected/);
    expect(tag(html, 'constraint-pattern')).toContain('value="[0-9]{3}-[0-9]{4}"');
    expect(visibleText(html)).toContain('Constraint (also in Optimizations) none JSON regex Pattern (the output follows it)');
    expect(lab.urlQuery).toBe('?topK=40&topP=0.9&constraint=regex:%5B0-9%5D%7B3%7D-%5B0-9%5D%7B4%7D');
  });

  it('send nothing by default, and JSON mode has no pattern field', () => {
    const lab = new Lab('');
    expect(lab.requestCuts).toEqual({});
    lab.constraint = 'json';
    lab.minP = 0.05;
    expect(lab.requestCuts).toEqual({ minP: 0.05, constraint: 'json' });
    const html = render(Controls, { props: { lab } }).body;
    expect(html).toMatch(/<option value="json"[^>]*selected/);
    expect(html).not.toContain('constraint-pattern');
  });
});
