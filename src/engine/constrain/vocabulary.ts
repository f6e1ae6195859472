// What each token of a tokenizer appends to the text, prepared once per tokenizer for every
// constraint compiled against it.
//
// A token's piece is not its text: SentencePiece pieces carry a leading space that decode drops
// right after BOS, and byte-level BPE pieces spell bytes as other characters. So each token's text
// is read from the tokenizer itself, as decode(context + [id]) minus decode(context) with a fixed
// context of ordinary text: the text the token appends when it follows other text, which is how
// every generated token follows the prompt. (After a prompt of BOS alone, SentencePiece decoding
// drops the first generated token's leading space, so the shown text may lack a leading space that
// the constraint counted; JSON allows leading whitespace either way.)
//
// Never allowed (text null):
//  - BOS, EOS and every token that decodes to nothing (control and special tokens): EOS is the
//    constraint's own business, and an empty token would let a model stall forever;
//  - tokens whose text holds U+FFFD: these are bytes of a character split over several tokens
//    (decode cannot show part of a character), which no character automaton can check on its own,
//    or a literal replacement character, which constrained output has no use for;
//  - tokens whose decoding changes the context's text (a tokenizer that merges across tokens).
import type { Tokenizer } from '../tokenizer/types.ts';
import { type TokenTrie, buildTokenTrie } from './token-trie.ts';

export interface ConstraintVocabulary {
  readonly vocabSize: number;
  readonly eosId: number;
  /** texts[id]: what token id appends after other text, or null when the token is never allowed. */
  readonly texts: readonly (string | null)[];
  readonly trie: TokenTrie;
}

const replacementChar = '\uFFFD';

/** Plain text to put each token after: its tokens decode the same wherever they stand. */
const contextText = 'a';

export function buildConstraintVocabulary(tokenizer: Tokenizer): ConstraintVocabulary {
  const context = tokenizer.encode(contextText, { bos: false });
  const contextDecoded = tokenizer.decode(context);
  const texts: (string | null)[] = [];
  for (let id = 0; id < tokenizer.vocabSize; id++) {
    const decoded = id === tokenizer.bosId || id === tokenizer.eosId ? '' : tokenizer.decode([...context, id]);
    const text = decoded.startsWith(contextDecoded) ? decoded.slice(contextDecoded.length) : '';
    texts.push(text.length === 0 || text.includes(replacementChar) ? null : text);
  }
  return { vocabSize: tokenizer.vocabSize, eosId: tokenizer.eosId, texts, trie: buildTokenTrie(texts) };
}
