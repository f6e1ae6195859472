// A Tokenizer over a Hugging Face tokenizer.json (+ optional tokenizer_config.json), built with
// @huggingface/tokenizers: the dependency-free tokenizer core that @huggingface/transformers v4
// itself uses. It works from the parsed JSON alone, so it never touches the network, and keeps
// transformers' ONNX runtime out of the worker bundle.
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import { ModelFormatError } from '../errors.ts';
import type { Tokenizer } from './types.ts';

export interface HuggingFaceTokenizerOptions {
  /** Names tokenizer.json in error messages. */
  fileName: string;
  /** The parsed tokenizer_config.json, when the model has one. */
  tokenizerConfig?: Record<string, unknown>;
  /** BOS/EOS ids from the model's config.json, used where tokenizer_config.json names no such token. */
  bosId?: number;
  eosId?: number;
}

export class HuggingFaceTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly bosId: number;
  readonly eosId: number;
  readonly #tokenizer: HfTokenizer;

  constructor(tokenizerJson: unknown, options: HuggingFaceTokenizerOptions) {
    const { fileName, tokenizerConfig = {} } = options;
    if (typeof tokenizerJson !== 'object' || tokenizerJson === null || !('model' in tokenizerJson)) {
      throw new ModelFormatError(fileName, 'not a tokenizer.json (no "model" section)');
    }
    try {
      // No clean-up of spaces (" ," → ","), whatever the config says: it can delete a space that
      // StreamingDecoder has already emitted, and streamed text must equal the final text.
      this.#tokenizer = new HfTokenizer(tokenizerJson, { ...tokenizerConfig, clean_up_tokenization_spaces: false });
    } catch (error) {
      throw new ModelFormatError(fileName, `unsupported tokenizer: ${error instanceof Error ? error.message : String(error)}`);
    }
    let maxId = -1;
    for (const id of this.#tokenizer.get_vocab(true).values()) maxId = Math.max(maxId, id);
    this.vocabSize = maxId + 1;
    this.bosId = this.#specialId(tokenizerConfig.bos_token, options.bosId, 'BOS', fileName);
    this.eosId = this.#specialId(tokenizerConfig.eos_token, options.eosId, 'EOS', fileName);
  }

  encode(text: string, { bos }: { bos: boolean }): number[] {
    // Special tokens written in the text (e.g. <|im_start|>) still map to their ids; BOS is ours to add.
    const ids = text.length > 0 ? this.#tokenizer.encode(text, { add_special_tokens: false }).ids : [];
    return bos ? [this.bosId, ...ids] : ids;
  }

  decode(tokens: readonly number[]): string {
    for (const token of tokens) {
      if (!Number.isInteger(token) || token < 0 || token >= this.vocabSize) {
        throw new RangeError(`token ${token} is outside the vocabulary of ${this.vocabSize}`);
      }
    }
    if (tokens.length === 0) return ''; // the library rejects an empty list
    return this.#tokenizer.decode([...tokens], { skip_special_tokens: true });
  }

  /** A special token's id: named in tokenizer_config.json (a string or an AddedToken object), else the model config's id. */
  #specialId(configToken: unknown, fallbackId: number | undefined, what: string, fileName: string): number {
    const content =
      typeof configToken === 'string'
        ? configToken
        : typeof configToken === 'object' && configToken !== null && 'content' in configToken && typeof configToken.content === 'string'
          ? configToken.content
          : undefined;
    if (content !== undefined) {
      const id = this.#tokenizer.token_to_id(content);
      if (id === undefined) throw new ModelFormatError(fileName, `${what} token ${content} is not in the vocabulary`);
      return id;
    }
    if (fallbackId === undefined) throw new ModelFormatError(fileName, `no ${what} token in tokenizer_config.json or the model config`);
    return fallbackId;
  }
}
