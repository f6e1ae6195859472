// Reads a llama2.c tokenizer file (tokenizer.bin, tok512.bin, ...):
//   int32 max_token_length, then per token: f32 score, int32 byte length, UTF-8 bytes.
// The file does not store its token count; it must equal the model's vocabulary size.
import { ModelFormatError } from '../errors.ts';
import { SentencePieceTokenizer } from './sentencepiece.ts';

// llama2.c's fixed layout: <unk>, <s>, </s>, then the 256 byte-fallback pieces.
const unknownId = 0;
const bosId = 1;
const eosId = 2;

export function parseLlama2cTokenizer(bytes: Uint8Array, fileName: string, vocabSize: number): SentencePieceTokenizer {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const utf8 = new TextDecoder('utf-8', { fatal: true });
  if (bytes.length < 4) throw new ModelFormatError(fileName, 'truncated: no max_token_length header');
  const maxTokenLength = view.getInt32(0, true);

  const pieces: string[] = [];
  const scores: number[] = [];
  let offset = 4;
  while (offset < bytes.length) {
    const id = pieces.length;
    if (offset + 8 > bytes.length) throw new ModelFormatError(fileName, `truncated in the header of token ${id}`);
    const score = view.getFloat32(offset, true);
    const length = view.getInt32(offset + 4, true);
    offset += 8;
    if (length < 0 || length > maxTokenLength) {
      throw new ModelFormatError(fileName, `token ${id} has length ${length} (max_token_length is ${maxTokenLength})`);
    }
    if (offset + length > bytes.length) throw new ModelFormatError(fileName, `truncated in the text of token ${id}`);
    try {
      pieces.push(utf8.decode(bytes.subarray(offset, offset + length)));
    } catch {
      throw new ModelFormatError(fileName, `token ${id} is not valid UTF-8`);
    }
    scores.push(score);
    offset += length;
  }

  if (pieces.length !== vocabSize) {
    throw new ModelFormatError(fileName, `holds ${pieces.length} tokens but the model's vocabulary has ${vocabSize}`);
  }
  return new SentencePieceTokenizer({
    pieces,
    scores: Float32Array.from(scores),
    bosId,
    eosId,
    silentIds: new Set([unknownId, bosId, eosId]),
    source: fileName,
  });
}
