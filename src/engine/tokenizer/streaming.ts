// Turns tokens into text one at a time for streaming output. A token's own piece is not its text:
// a character may be split over several byte tokens, and a tokenizer may change how a piece reads
// in context (the space after BOS). So each step decodes the whole sequence and emits what is new.
import type { Tokenizer } from './types.ts';

const replacementChar = '\uFFFD';

export class StreamingDecoder {
  readonly #tokenizer: Tokenizer;
  readonly #tokens: number[];
  /** Length (UTF-16 units) of the decoded text already emitted, or counted as context. */
  #emitted: number;

  /**
   * `context` is decoded along with later tokens but never emitted (e.g. [BOS] or the prompt), so
   * the first generated token reads as it does in the whole sequence.
   */
  constructor(tokenizer: Tokenizer, context: readonly number[] = []) {
    this.#tokenizer = tokenizer;
    this.#tokens = [...context];
    this.#emitted = this.#stableText().length;
  }

  /** Adds a token and returns the text it completes (empty while a character is incomplete). */
  push(token: number): string {
    this.#tokens.push(token);
    const text = this.#stableText();
    const fragment = text.slice(this.#emitted);
    this.#emitted = Math.max(this.#emitted, text.length);
    return fragment;
  }

  /** Returns whatever is held back (a trailing incomplete character, as U+FFFD) at the end of the stream. */
  flush(): string {
    const text = this.#tokenizer.decode(this.#tokens);
    const fragment = text.slice(this.#emitted);
    this.#emitted = Math.max(this.#emitted, text.length);
    return fragment;
  }

  /** The decoded text without a trailing U+FFFD, which may yet become a character when its last bytes arrive. */
  #stableText(): string {
    const text = this.#tokenizer.decode(this.#tokens);
    return text.endsWith(replacementChar) ? text.slice(0, -1) : text;
  }
}
