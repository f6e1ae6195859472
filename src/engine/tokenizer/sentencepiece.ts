// A SentencePiece BPE tokenizer that encodes and decodes exactly like karpathy/llama2.c run.c
// (`encode`/`decode`), so token ids agree with llama2.c for the tinyllamas models. Both the
// llama2.c tokenizer.bin and a GGUF "llama" vocabulary are normalized into a SentencePieceVocab.
import { ModelFormatError } from '../errors.ts';
import type { Tokenizer } from './types.ts';

export interface SentencePieceVocab {
  /** Piece text per id with spaces as ' ' (SentencePiece's '▁' already replaced); byte-fallback pieces read `<0xXX>`. */
  pieces: readonly string[];
  /** Merge priority per id (higher merges first). */
  scores: Float32Array;
  bosId: number;
  eosId: number;
  /** Ids that decode to no text: unknown, BOS, EOS and other control tokens. */
  silentIds: ReadonlySet<number>;
  /** Names the vocabulary's file in error messages. */
  source: string;
}

const bytePiecePattern = /^<0x([0-9A-Fa-f]{2})>$/;

// llama2.c starts its best-merge search from this score, so pieces scored at or below it never merge.
const noMergeScore = -1e10;

const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder(); // invalid or incomplete UTF-8 becomes U+FFFD

export class SentencePieceTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly bosId: number;
  readonly eosId: number;
  readonly #pieces: readonly string[];
  readonly #scores: Float32Array;
  /** Piece text → id (the first id when a piece repeats). */
  readonly #idOf = new Map<string, number>();
  /** Byte value → id of its `<0xXX>` piece, used when a character has no piece of its own. */
  readonly #byteIds = new Int32Array(256).fill(-1);
  /** The bytes each id decodes to (empty for silent ids). */
  readonly #pieceBytes: Uint8Array[];

  constructor(vocab: SentencePieceVocab) {
    const { pieces, scores, bosId, eosId, silentIds, source } = vocab;
    if (scores.length !== pieces.length) {
      throw new ModelFormatError(source, `${pieces.length} tokens but ${scores.length} scores`);
    }
    for (const id of [bosId, eosId]) {
      if (!Number.isInteger(id) || id < 0 || id >= pieces.length) {
        throw new ModelFormatError(source, `BOS/EOS id ${id} is outside the vocabulary of ${pieces.length}`);
      }
    }
    this.vocabSize = pieces.length;
    this.bosId = bosId;
    this.eosId = eosId;
    this.#pieces = pieces;
    this.#scores = scores;
    this.#pieceBytes = pieces.map((piece, id) => {
      if (silentIds.has(id)) return new Uint8Array(0);
      const byteMatch = bytePiecePattern.exec(piece);
      if (byteMatch) {
        const byte = parseInt(byteMatch[1], 16);
        if (this.#byteIds[byte] < 0) this.#byteIds[byte] = id;
        return Uint8Array.of(byte);
      }
      return utf8Encoder.encode(piece);
    });
    pieces.forEach((piece, id) => {
      if (!this.#idOf.has(piece)) this.#idOf.set(piece, id);
    });
    const missing = this.#byteIds.findIndex((id) => id < 0);
    if (missing >= 0) {
      const name = `<0x${missing.toString(16).toUpperCase().padStart(2, '0')}>`;
      throw new ModelFormatError(source, `the vocabulary has no byte-fallback piece ${name}`);
    }
  }

  encode(text: string, { bos }: { bos: boolean }): number[] {
    // Start from one token per character; llama2.c (like SentencePiece's add_dummy_prefix) puts a
    // space in front of non-empty text. A character without a piece becomes its UTF-8 bytes.
    const symbols: number[] = [];
    for (const char of text.length > 0 ? ' ' + text : '') {
      const id = this.#idOf.get(char);
      if (id !== undefined) symbols.push(id);
      else for (const byte of utf8Encoder.encode(char)) symbols.push(this.#byteIds[byte]);
    }

    // Repeatedly merge the adjacent pair whose concatenation is the best-scoring piece (the
    // leftmost pair on ties, as llama2.c compares with a strict '>'). merges[i] caches the piece
    // that symbols i and i+1 would merge into (-1 for none); a merge changes only its neighbours.
    const mergeOf = (left: number, right: number): number => this.#idOf.get(this.#pieces[left] + this.#pieces[right]) ?? -1;
    const merges = symbols.slice(1).map((right, i) => mergeOf(symbols[i], right));
    for (;;) {
      let bestScore = noMergeScore;
      let bestIndex = -1;
      for (let i = 0; i < merges.length; i++) {
        if (merges[i] >= 0 && this.#scores[merges[i]] > bestScore) {
          bestScore = this.#scores[merges[i]];
          bestIndex = i;
        }
      }
      if (bestIndex < 0) break;
      symbols.splice(bestIndex, 2, merges[bestIndex]);
      merges.splice(bestIndex, 1);
      if (bestIndex > 0) merges[bestIndex - 1] = mergeOf(symbols[bestIndex - 1], symbols[bestIndex]);
      if (bestIndex < merges.length) merges[bestIndex] = mergeOf(symbols[bestIndex], symbols[bestIndex + 1]);
    }

    return bos ? [this.bosId, ...symbols] : symbols;
  }

  decode(tokens: readonly number[]): string {
    const chunks: Uint8Array[] = [];
    let length = 0;
    tokens.forEach((token, i) => {
      let bytes = this.#pieceBytes[token];
      if (bytes === undefined) throw new RangeError(`token ${token} is outside the vocabulary of ${this.vocabSize}`);
      // SentencePiece drops the dummy-prefix space of the piece that follows BOS (llama2.c PR #89).
      if (i > 0 && tokens[i - 1] === this.bosId && bytes[0] === 0x20) bytes = bytes.subarray(1);
      chunks.push(bytes);
      length += bytes.length;
    });
    // Join bytes before decoding, so a character split over several <0xXX> tokens comes out whole.
    const all = new Uint8Array(length);
    let offset = 0;
    for (const chunk of chunks) {
      all.set(chunk, offset);
      offset += chunk.length;
    }
    return utf8Decoder.decode(all);
  }
}
