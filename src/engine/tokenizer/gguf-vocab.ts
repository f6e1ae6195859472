// Builds the llama2.c-style SentencePiece tokenizer from a GGUF file's embedded vocabulary
// (tokenizer.ggml.* metadata), so a .gguf model tokenizes exactly like its llama2.c tokenizer.bin.
import { ModelFormatError } from '../errors.ts';
import type { GgufVocabulary } from '../model/gguf.ts';
import { SentencePieceTokenizer } from './sentencepiece.ts';

// llama.cpp token types (llama_token_type) of the tokens that print nothing.
const unknownType = 2;
const controlType = 3;

export function sentencePieceFromGguf(vocab: GgufVocabulary, fileName: string): SentencePieceTokenizer {
  if (vocab.model !== 'llama') {
    throw new ModelFormatError(fileName, `tokenizer.ggml.model "${vocab.model}" is not supported (only "llama" SentencePiece vocabularies)`);
  }
  // Unknown and control tokens print nothing; without token types, only BOS and EOS are known to be control.
  const silentIds = new Set([vocab.bosId, vocab.eosId]);
  vocab.tokenTypes?.forEach((type, id) => {
    if (type === unknownType || type === controlType) silentIds.add(id);
  });
  return new SentencePieceTokenizer({
    pieces: vocab.tokens.map((token) => token.replaceAll('\u2581', ' ')),
    scores: vocab.scores,
    bosId: vocab.bosId,
    eosId: vocab.eosId,
    silentIds,
    source: fileName,
  });
}
