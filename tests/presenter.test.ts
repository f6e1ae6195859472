import { render } from 'svelte/server';
import { describe, expect, it } from 'vitest';
import PresenterOverlay from '../src/app/components/PresenterOverlay.svelte';
import { defaultScript, describeAction, gotoStep, keyAction, moveStep, type PresenterStep } from '../src/app/presenter.ts';
import { landedSwitch } from '../src/app/switches.ts';

/** The rendered markup with tags removed and whitespace collapsed: what a reader sees. */
function text(html: string): string {
  return html
    .replace(/<!--[\s\S]*?-->/g, '')
    .replace(/<[^>]+>/g, ' ')
    .replace(/\s+/g, ' ')
    .trim();
}

describe('presenter keys', () => {
  it('maps slide-deck keys to moves and leaves other keys alone', () => {
    const keys: Record<string, string | null> = {
      ArrowRight: 'next',
      ' ': 'next',
      PageDown: 'next',
      ArrowLeft: 'prev',
      PageUp: 'prev',
      Escape: 'exit',
      Home: 'first',
      End: 'last',
      Enter: null,
      a: null,
      ArrowUp: null,
    };
    for (const [key, action] of Object.entries(keys)) expect(keyAction(key), key).toBe(action);
  });
});

describe('presenter steps', () => {
  it('moves one step at a time and stops at the ends', () => {
    expect(moveStep(0, 'next', 3)).toBe(1);
    expect(moveStep(1, 'next', 3)).toBe(2);
    expect(moveStep(2, 'next', 3)).toBe(2);
    expect(moveStep(2, 'prev', 3)).toBe(1);
    expect(moveStep(0, 'prev', 3)).toBe(0);
    expect(moveStep(1, 'first', 3)).toBe(0);
    expect(moveStep(0, 'last', 3)).toBe(2);
  });

  it('clamps a step taken from a URL or a typo into the script', () => {
    expect(gotoStep(5, 3)).toBe(2);
    expect(gotoStep(-4, 3)).toBe(0);
    expect(gotoStep(1.9, 3)).toBe(1);
    expect(gotoStep(Number.NaN, 3)).toBe(0);
    expect(gotoStep(2, 0)).toBe(0);
    expect(moveStep(0, 'last', 0)).toBe(0);
  });

  it('tells the story: f32 run, then q4_0 run, then where the bytes go', () => {
    const kinds = defaultScript.map((s) => (s.action?.kind === 'set' ? `set ${s.action.key}=${s.action.value}` : (s.action?.kind ?? 'none')));
    const f32 = kinds.indexOf('set weightFormat=f32');
    const q4 = kinds.indexOf('set weightFormat=q4_0');
    expect(f32).toBeGreaterThanOrEqual(0);
    expect(kinds[f32 + 1]).toBe('generate');
    expect(q4).toBeGreaterThan(f32 + 1);
    expect(kinds[q4 + 1]).toBe('generate');
    expect(kinds).toContain('profile');
    const shown = defaultScript.flatMap((s) => (s.action?.kind === 'show' ? [s.action.panel] : []));
    expect(shown).toEqual(['model', 'tokens-per-second', 'memory', 'workbench', 'batching', 'kv-cache', 'economics']);
    expect(defaultScript.length).toBeGreaterThanOrEqual(8);
    for (const step of defaultScript) {
      expect(step.title.length).toBeGreaterThan(0);
      expect(step.say.length).toBeGreaterThan(20);
      // A 'set' step only uses values the switchboard knows.
      if (step.action?.kind === 'set') expect(Object.keys(landedSwitch(step.action.key).valueNotes)).toContain(step.action.value);
    }
  });

  it('describes each action in words', () => {
    expect(describeAction({ kind: 'set', key: 'weightFormat', value: 'q4_0' })).toBe('set weight format to q4_0');
    expect(describeAction({ kind: 'set', key: 'sampler', value: 'cpu' })).toBe('set sampler to cpu');
    expect(describeAction({ kind: 'set', key: 'prefixCache', value: 'false' })).toBe('set prefix cache to off');
    expect(describeAction({ kind: 'show', panel: 'kv-cache' })).toBe('show the kv-cache panel');
    expect(describeAction({ kind: 'generate' })).toBe('generate');
    expect(describeAction({ kind: 'show', panel: 'memory' })).toBe('show the memory panel');
    expect(describeAction({ kind: 'profile' })).toBe('profile one decode step');
  });
});

describe('PresenterOverlay', () => {
  const steps: PresenterStep[] = [
    { title: 'One', say: 'First <b>thing</b> & more.' },
    { title: 'Two', say: 'Flip it.', action: { kind: 'set', key: 'weightFormat', value: 'q8_0' } },
    { title: 'Three', say: 'Run it.', action: { kind: 'generate' } },
  ];

  it('shows the step number, title, speaker note and the action it will run', () => {
    const html = render(PresenterOverlay, { props: { steps, index: 1, replaying: false, onkey: () => {} } }).body;
    expect(html).toMatch(/data-testid="presenter"[^>]*data-step="1"/);
    const shown = text(html);
    expect(shown).toContain('Step 2 / 3');
    expect(shown).toContain('Two Flip it.');
    expect(shown).toContain('Action: set weight format to q8_0');
    expect(shown).toContain('Esc: exit');
    expect(shown).toContain('← Back Next → Exit');
    expect(html).not.toContain('presenter-replay');
  });

  it('renders the note as text, and no action line for a step without one', () => {
    const html = render(PresenterOverlay, { props: { steps, index: 0, replaying: false } }).body;
    expect(html).toContain('First &lt;b>thing&lt;/b> &amp; more.');
    expect(html).not.toContain('presenter-action');
    // Without onkey it only displays: no navigation buttons.
    expect(html).not.toContain('<button');
  });

  it('clamps an index past the end to the last step', () => {
    const html = render(PresenterOverlay, { props: { steps, index: 9, replaying: false } }).body;
    expect(html).toMatch(/data-step="2"/);
    expect(text(html)).toContain('Step 3 / 3 Three Run it.');
  });

  it('says when it replays recorded telemetry, and from when', () => {
    const html = render(PresenterOverlay, { props: { steps, index: 0, replaying: true, recordedAt: '2025-05-01T14:03:22.000Z' } }).body;
    expect(text(html)).toContain('replaying recorded telemetry from 2025-05-01 14:03 UTC');
  });
});
