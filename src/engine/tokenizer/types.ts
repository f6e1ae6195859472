export interface Tokenizer {
  readonly vocabSize: number;
  readonly bosId: number;
  readonly eosId: number;
  /** Encodes text to token ids; prepends BOS when `bos` is true. */
  encode(text: string, options: { bos: boolean }): number[];
  /** Decodes a token sequence to text (BOS/EOS and other control tokens produce no text). */
  decode(tokens: readonly number[]): string;
}
