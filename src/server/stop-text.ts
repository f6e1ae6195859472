// OpenAI's `stop`: generation ends where the text first contains one of the stop strings, and the
// returned text ends just before it. Streamed text cannot be taken back, so a tail that could still
// grow into a stop string is held until the next fragment settles it.

export class StopText {
  readonly #stops: readonly string[];
  /** Text received but not yet released: it may be the start of a stop string. */
  #held = '';
  #stopped = false;

  constructor(stops: readonly string[]) {
    this.#stops = stops;
  }

  get stopped(): boolean {
    return this.#stopped;
  }

  /** Adds generated text; returns what can be released now (nothing after a stop string was seen). */
  push(fragment: string): string {
    if (this.#stopped) return '';
    const text = this.#held + fragment;
    let cut = -1;
    for (const stop of this.#stops) {
      const at = text.indexOf(stop);
      if (at >= 0 && (cut < 0 || at < cut)) cut = at;
    }
    if (cut >= 0) {
      this.#stopped = true;
      this.#held = '';
      return text.slice(0, cut);
    }
    const keep = this.#pendingPrefix(text);
    this.#held = text.slice(text.length - keep);
    return text.slice(0, text.length - keep);
  }

  /** The held tail at the end of generation (it never became a stop string). */
  flush(): string {
    const rest = this.#held;
    this.#held = '';
    return rest;
  }

  /** Length of the longest end of `text` that is a proper start of some stop string. */
  #pendingPrefix(text: string): number {
    let longest = 0;
    for (const stop of this.#stops) {
      for (let n = Math.min(stop.length - 1, text.length); n > longest; n--) {
        if (text.endsWith(stop.slice(0, n))) {
          longest = n;
          break;
        }
      }
    }
    return longest;
  }
}
