// The timeline (engine/timeline.ts) of one generation in the engine: tokenize the prompt, prefill up
// to the first token, decode up to the last, then respond (what is left until the result returns).
// The lab's pipeline panel draws it next to the server's timelines.
import type { StopReason } from '../engine.ts';
import { TimelineRecorder, type RequestTimeline, type TimelineOutcome } from '../timeline.ts';

let generations = 0;

const outcomes: Record<StopReason, TimelineOutcome> = { eos: 'stop', length: 'length', context: 'length', cancelled: 'cancelled' };

export class GenerationTimeline {
  readonly #recorder: TimelineRecorder;
  /** When the previous token arrived (or the prefill started), ms since the start. */
  #previousAt = 0;

  /** Starts the tokenize stage now. */
  constructor() {
    this.#recorder = new TimelineRecorder(`generate-${++generations}`, 'engine', 'generate', true, performance.now(), 'tokenize');
  }

  /** The prompt is tokens: the model's work starts. */
  prefill(promptTokens: number): void {
    this.#recorder.timeline.promptTokens = promptTokens;
    this.#recorder.enter('prefill');
    this.#previousAt = this.#recorder.now();
  }

  /**
   * Records a token the model produced in `step` (which ran `rows` rows), timing `detokenize` (its
   * text) and `deliver` (handing that text to the caller: the worker posts it to the page).
   */
  token(token: number, step: number, rows: number, detokenize: () => string, deliver: (text: string) => void): string {
    const atMs = this.#recorder.now();
    if (this.#recorder.timeline.tokens.length === 0) this.#recorder.enter('decode', atMs);
    const before = performance.now();
    const text = detokenize();
    const detokenized = performance.now();
    deliver(text);
    const delivered = performance.now();
    this.#recorder.token({ token, atMs, stepMs: atMs - this.#previousAt, step, batchRows: rows, detokenizeMs: detokenized - before, writeMs: delivered - detokenized, text });
    this.#previousAt = atMs;
    return text;
  }

  /** Ends the decode stage at the last token; the rest, until now, is the response. */
  finish(stopReason: StopReason, prompt: { cached: number; computed: number }): RequestTimeline {
    const tokens = this.#recorder.timeline.tokens;
    this.#recorder.enter('respond', tokens.length > 0 ? tokens[tokens.length - 1].atMs : undefined);
    this.#recorder.finish(outcomes[stopReason], prompt);
    return this.#recorder.timeline;
  }
}
