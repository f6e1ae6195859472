// Presenter mode: a talk through the lab as a list of steps, each with a line for the speaker and
// an optional action the page performs when the step is reached. Pure data and pure functions:
// the page keeps the step index in its state and runs the actions against the engine.
import type { EngineSettings } from '../engine/telemetry.ts';
import { landedSwitch, valueLabel } from './switches.ts';

export type PresenterAction =
  | { kind: 'set'; key: keyof EngineSettings; value: string }
  | { kind: 'generate' }
  /** Brings a panel into view; `panel` is the panel's id on the page (e.g. 'memory'). */
  | { kind: 'show'; panel: string }
  /** Profiles one decode step kernel by kernel. */
  | { kind: 'profile' };

export interface PresenterStep {
  title: string;
  /** What the presenter says, shown large. */
  say: string;
  action?: PresenterAction;
}

export const defaultScript: readonly PresenterStep[] = [
  {
    title: 'What decoding is',
    say: 'The model writes one token at a time. Each token runs every layer once, and every layer multiplies its weight matrices by a single vector: every weight is read from memory for one multiply-add.',
    action: { kind: 'show', panel: 'model' },
  },
  {
    title: 'Start from full precision',
    say: 'Weights as 32-bit floats: four bytes for every parameter, all of them read for every token.',
    action: { kind: 'set', key: 'weightFormat', value: 'f32' },
  },
  {
    title: 'Generate',
    say: 'Watch the text stream in and the time of each step.',
    action: { kind: 'generate' },
  },
  {
    title: 'Tokens per second',
    say: 'Decode speed is roughly memory bandwidth divided by the bytes read per token. The arithmetic units are mostly waiting for data.',
    action: { kind: 'show', panel: 'tokens-per-second' },
  },
  {
    title: 'Four bits per weight',
    say: 'Switch the weights to q4_0: 4-bit levels with one scale per block of 32. Same model, its matrices about a seventh of the bytes.',
    action: { kind: 'set', key: 'weightFormat', value: 'q4_0' },
  },
  {
    title: 'Generate again',
    say: 'Same prompt, same seed. Compare the speed, and check whether the text changed.',
    action: { kind: 'generate' },
  },
  {
    title: 'Where the bytes go',
    say: 'Bytes per token split into weights, KV cache and activations: the part that shrank is the part we quantized.',
    action: { kind: 'show', panel: 'memory' },
  },
  {
    title: 'Kernel by kernel',
    say: 'A profile of one decode step: the matrix-vector products dominate, and each is compared to the bandwidth the probe measured.',
    action: { kind: 'profile' },
  },
  {
    title: 'The workbench',
    say: 'One kernel, several ways to split it across threads, timed and checked on this very GPU. Edit the WGSL and the model runs your version.',
    action: { kind: 'show', panel: 'workbench' },
  },
  {
    title: 'Many users at once',
    say: 'Decode several requests together and every weight read serves the whole batch: total tokens per second climbs, while each user waits a little longer per token. Each point on the curve is one batch size.',
    action: { kind: 'show', panel: 'batching' },
  },
  {
    title: 'Memory for every sequence',
    say: 'Each sequence keeps keys and values for every token it has seen. Paging hands out small pages as tokens arrive, so short answers stop reserving a whole context, and requests that begin alike share pages.',
    action: { kind: 'show', panel: 'kv-cache' },
  },
  {
    title: 'What it costs',
    say: 'Tokens per second per GPU sets the price of a token: fewer bytes per token means more tokens for the same hardware and power.',
    action: { kind: 'show', panel: 'economics' },
  },
];

export type PresenterMove = 'next' | 'prev' | 'first' | 'last';
export type PresenterKeyAction = PresenterMove | 'exit';

/** What a key (KeyboardEvent.key) does in presenter mode; null for keys it leaves alone. */
export function keyAction(key: string): PresenterKeyAction | null {
  switch (key) {
    case 'ArrowRight':
    case ' ':
    case 'Spacebar':
    case 'PageDown':
      return 'next';
    case 'ArrowLeft':
    case 'PageUp':
      return 'prev';
    case 'Escape':
      return 'exit';
    case 'Home':
      return 'first';
    case 'End':
      return 'last';
    default:
      return null;
  }
}

/** `index` clamped to the script's steps (0 for an empty script or a value that is not a number). */
export function gotoStep(index: number, count: number): number {
  if (count <= 0 || !Number.isFinite(index)) return 0;
  return Math.min(count - 1, Math.max(0, Math.trunc(index)));
}

/** The step a move lands on; next and prev stop at the ends rather than wrapping. */
export function moveStep(index: number, move: PresenterMove, count: number): number {
  switch (move) {
    case 'next':
      return gotoStep(index + 1, count);
    case 'prev':
      return gotoStep(index - 1, count);
    case 'first':
      return 0;
    case 'last':
      return gotoStep(count - 1, count);
  }
}

/** The action in words, for the overlay: "set weight format to q4_0". */
export function describeAction(action: PresenterAction): string {
  switch (action.kind) {
    case 'set':
      return `set ${landedSwitch(action.key).markName} to ${valueLabel(action.key, action.value)}`;
    case 'generate':
      return 'generate';
    case 'show':
      return `show the ${action.panel} panel`;
    case 'profile':
      return 'profile one decode step';
  }
}
