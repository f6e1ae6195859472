import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { ModelFormatError } from '../src/engine/errors.ts';
import { loadModel } from '../src/engine/model/load.ts';
import { sentencePieceFromGguf } from '../src/engine/tokenizer/gguf-vocab.ts';
import { HuggingFaceTokenizer } from '../src/engine/tokenizer/huggingface.ts';
import { parseLlama2cTokenizer } from '../src/engine/tokenizer/llama2c.ts';
import type { SentencePieceTokenizer } from '../src/engine/tokenizer/sentencepiece.ts';
import { StreamingDecoder } from '../src/engine/tokenizer/streaming.ts';
import type { Tokenizer } from '../src/engine/tokenizer/types.ts';
import { directorySource } from '../src/node/fs-source.ts';

const modelsDir = new URL('../../shared/models/', import.meta.url);
const stories = directorySource(fileURLToPath(new URL('stories260K/', modelsDir)));
const tok512Path = stories.describe('tok512.bin');
const smolDir = new URL('smollm2-135m-tokenizer/', modelsDir);

const readTok512 = () => stories.read('tok512.bin');
const readJson = async (url: URL): Promise<unknown> => JSON.parse(await readFile(url, 'utf8'));

/** Feeds tokens after `context` one by one and returns each fragment, then the flushed remainder. */
function stream(tokenizer: Tokenizer, context: number[], tokens: number[]): { fragments: string[]; rest: string } {
  const decoder = new StreamingDecoder(tokenizer, context);
  const fragments = tokens.map((token) => decoder.push(token));
  return { fragments, rest: decoder.flush() };
}

const roundTripTexts = ['Once upon a time', 'café ☕', "Lily's dog ran   fast.\nThe end.", 'naïve 日本 🦙', ' leading space', 'x'];

describe('llama2.c tokenizer (tok512.bin)', () => {
  let tok512: SentencePieceTokenizer;
  beforeAll(async () => {
    tok512 = parseLlama2cTokenizer(await readTok512(), tok512Path, 512);
  });

  it('encodes like llama2.c run.c', () => {
    // Expected ids from an independent byte-level Python port of run.c `encode`.
    expect(tok512.encode('Once upon a time', { bos: true })).toEqual([1, 403, 407, 261, 378]);
    expect(tok512.encode('Hello, world!', { bos: false })).toEqual([346, 306, 414, 432, 263, 304, 341, 443]);
    // 'é' has a piece of its own; '☕' (E2 98 95) has none and falls back to byte tokens (byte + 3).
    expect(tok512.encode('café ☕', { bos: false })).toEqual([280, 412, 431, 485, 410, 229, 155, 152]);
  });

  it('adds the dummy-prefix space only to non-empty text', () => {
    expect(tok512.encode('', { bos: false })).toEqual([]);
    expect(tok512.encode('', { bos: true })).toEqual([1]);
  });

  it.each(roundTripTexts)('decode(encode(%j)) gives the text back', (text) => {
    expect(tok512.decode(tok512.encode(text, { bos: true }))).toBe(text);
  });

  it('drops the leading space only after BOS, and control tokens print nothing', () => {
    expect(tok512.decode([403, 407])).toBe(' Once upon');
    expect(tok512.decode([1, 403, 407])).toBe('Once upon');
    expect(tok512.decode([0, 1, 403, 2])).toBe('Once');
  });

  it('reports a truncated file as a ModelFormatError naming the file', async () => {
    const bytes = await readTok512();
    for (const length of [2, 4 + 6, bytes.length - 1]) {
      const parse = () => parseLlama2cTokenizer(bytes.subarray(0, length), tok512Path, 512);
      expect(parse).toThrow(ModelFormatError);
      expect(parse).toThrow(tok512Path);
    }
  });

  it("rejects a vocabulary size other than the model's", async () => {
    const bytes = await readTok512();
    expect(() => parseLlama2cTokenizer(bytes, tok512Path, 32000)).toThrow(/512 tokens but the model's vocabulary has 32000/);
  });
});

describe('GGUF vocabulary (stories260K.gguf)', () => {
  it('tokenizes and decodes exactly like tok512.bin', async () => {
    const tok512 = parseLlama2cTokenizer(await readTok512(), tok512Path, 512);
    const { vocabulary } = await loadModel(stories, 'stories260K.gguf');
    if (!vocabulary) throw new Error('stories260K.gguf should carry its vocabulary');
    const gguf = sentencePieceFromGguf(vocabulary, stories.describe('stories260K.gguf'));
    expect([gguf.vocabSize, gguf.bosId, gguf.eosId]).toEqual([512, 1, 2]);
    for (const text of [...roundTripTexts, 'Hello, world!', 'The cat sat on the mat. "Yes!" she said.']) {
      expect(gguf.encode(text, { bos: true })).toEqual(tok512.encode(text, { bos: true }));
    }
    for (let id = 0; id < 512; id++) expect(gguf.decode([id])).toBe(tok512.decode([id]));
  });

  it('refuses a byte-level BPE vocabulary', () => {
    const vocab = { tokens: ['a'], scores: new Float32Array(1), bosId: 0, eosId: 0, model: 'gpt2' };
    expect(() => sentencePieceFromGguf(vocab, 'x.gguf')).toThrow(ModelFormatError);
  });
});

describe('Hugging Face tokenizer (SmolLM2-135M tokenizer.json)', () => {
  let tokenizer: HuggingFaceTokenizer;
  beforeAll(async () => {
    const config = (await readJson(new URL('config.json', smolDir))) as { bos_token_id: number; eos_token_id: number };
    tokenizer = new HuggingFaceTokenizer(await readJson(new URL('tokenizer.json', smolDir)), {
      fileName: 'tokenizer.json',
      bosId: config.bos_token_id,
      eosId: config.eos_token_id,
    });
  });

  it('has the vocabulary and BOS/EOS of the model config', () => {
    expect([tokenizer.vocabSize, tokenizer.bosId, tokenizer.eosId]).toEqual([49152, 1, 2]);
  });

  it('takes BOS/EOS from tokenizer_config.json when it names them', async () => {
    const withConfig = new HuggingFaceTokenizer(await readJson(new URL('tokenizer.json', smolDir)), {
      fileName: 'tokenizer.json',
      tokenizerConfig: { bos_token: '<|endoftext|>', eos_token: { content: '<|im_end|>' } },
      bosId: 1,
    });
    expect([withConfig.bosId, withConfig.eosId]).toEqual([0, 2]);
  });

  it('encodes English text with the vocabulary ids and round-trips it', () => {
    // Ids looked up by hand in tokenizer.json's vocab ("Ġ" marks a leading space).
    expect(tokenizer.encode('Hello, world!', { bos: false })).toEqual([19556, 28, 905, 17]);
    expect(tokenizer.encode('Once upon a time', { bos: true })).toEqual([1, 6403, 1980, 253, 655]);
    for (const text of ['Once upon a time, there was a little girl named Lily.', 'café ☕ and naïve 日本 🦙', '  two  spaces\n', 'Wait , what ?']) {
      expect(tokenizer.decode(tokenizer.encode(text, { bos: true }))).toBe(text);
    }
  });

  it('maps <|im_start|> in the text to its single id, and prints no special tokens', () => {
    const ids = tokenizer.encode('<|im_start|>user\nHello, world!<|im_end|>', { bos: false });
    expect(ids).toEqual([1, 4093, 198, 19556, 28, 905, 17, 2]);
    expect(tokenizer.decode(ids)).toBe('user\nHello, world!');
    expect(tokenizer.decode([])).toBe('');
  });

  it('rejects something that is not a tokenizer.json', () => {
    expect(() => new HuggingFaceTokenizer({ version: '1.0' }, { fileName: 'bad.json' })).toThrow(ModelFormatError);
  });
});

describe('StreamingDecoder', () => {
  it('holds back a character split over byte tokens until its last byte arrives', async () => {
    const tok512 = parseLlama2cTokenizer(await readTok512(), tok512Path, 512);
    const tokens = tok512.encode('café ☕ ok', { bos: false });
    const { fragments, rest } = stream(tok512, [tok512.bosId], tokens);
    // ' ☕' is the piece ' ' then the bytes E2 98 95 (ids 229, 155, 152).
    const cup = tokens.indexOf(229);
    expect(tokens.slice(cup, cup + 3)).toEqual([229, 155, 152]);
    expect(fragments.slice(cup, cup + 3)).toEqual(['', '', '☕']);
    expect(fragments.join('')).toBe('café ☕ ok'); // no leading space: it follows BOS
    expect(rest).toBe('');
  });

  it('releases an incomplete character as U+FFFD on flush', async () => {
    const tok512 = parseLlama2cTokenizer(await readTok512(), tok512Path, 512);
    expect(stream(tok512, [], [403, 229])).toEqual({ fragments: [' Once', ''], rest: '\uFFFD' });
  });

  it('works over a byte-level BPE tokenizer', async () => {
    const tokenizer = new HuggingFaceTokenizer(await readJson(new URL('tokenizer.json', smolDir)), { fileName: 'tokenizer.json', bosId: 1, eosId: 2 });
    const tokens = tokenizer.encode('Tea ☕ time', { bos: false });
    const { fragments, rest } = stream(tokenizer, [], tokens);
    expect(fragments.join('')).toBe('Tea ☕ time');
    expect(fragments.filter((fragment) => fragment.includes('\uFFFD'))).toEqual([]);
    expect(rest).toBe('');
  });
});
