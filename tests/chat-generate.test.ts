// Chat mode end to end: a model whose folder has tokenizer.json and a tokenizer_config.json with a
// chat template wraps the prompt in the template (no extra BOS), and a model without a template
// refuses chat with a clear error.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEngine, type Engine } from '../src/engine/index.ts';
import { HuggingFaceTokenizer } from '../src/engine/tokenizer/huggingface.ts';
import { directorySource } from '../src/node/fs-source.ts';
import { nodeGpu } from '../src/node/gpu.ts';
import { memorySource } from './helpers/memory-source.ts';
import { randomModel, tinyConfig, writeHuggingFace } from './helpers/model-files.ts';

const read = (url: string) => readFileSync(fileURLToPath(new URL(url, import.meta.url)), 'utf8');
const tokenizerJson = read('../../shared/models/smollm2-135m-tokenizer/tokenizer.json');
const tokenizerConfig = read('./fixtures/chat-tokenizer/tokenizer_config.json');
// SmolLM2's vocabulary with tiny layers: the embedding is most of the model.
const config = tinyConfig({ vocabSize: 49152, bosTokenId: 1, eosTokenId: 2, maxSeqLen: 128 });
const folder = writeHuggingFace(randomModel(config, 3));

describe('chat templates in generation', () => {
  let chat: Engine;

  beforeAll(async () => {
    const files = memorySource({ 'chat/tokenizer.json': tokenizerJson, 'chat/tokenizer_config.json': tokenizerConfig, 'chat/config.json': folder['config.json'], 'chat/model.safetensors': folder['model.safetensors'] });
    chat = await createEngine({ gpu: nodeGpu(), files, entry: 'chat', matvecVariant: 'naive' });
  });

  afterAll(() => chat.dispose());

  it('reports the template and wraps the prompt in it, without adding BOS', async () => {
    expect(chat.model.chatTemplate).toBe(true);
    const tokenizer = new HuggingFaceTokenizer(JSON.parse(tokenizerJson), { fileName: 'tokenizer.json', tokenizerConfig: JSON.parse(tokenizerConfig), bosId: 1, eosId: 2 });
    const result = await chat.generate({ prompt: 'Hi there', maxTokens: 4, temperature: 0, seed: 0, chat: true });
    const expected = '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n';
    expect(result.tokens.slice(0, result.promptTokens)).toEqual(tokenizer.encode(expected, { bos: false }));
    expect(result.tokens.slice(0, result.promptTokens).filter((t) => t === 1)).toHaveLength(3); // <|im_start|> opens each turn: no extra BOS
    const plain = await chat.generate({ prompt: 'Hi there', maxTokens: 4, temperature: 0, seed: 0 });
    expect(plain.promptTokens).toBeLessThan(result.promptTokens);
  });

  it('refuses chat for a model without a template', async () => {
    const stories = fileURLToPath(new URL('../../shared/models/', import.meta.url));
    const engine = await createEngine({ gpu: nodeGpu(), files: directorySource(stories), entry: 'stories260K/stories260K.bin', matvecVariant: 'naive', maxContext: 32 });
    try {
      expect(engine.model.chatTemplate).toBe(false);
      await expect(engine.generate({ prompt: 'Hi', maxTokens: 2, temperature: 0, seed: 0, chat: true })).rejects.toThrow(/no chat template/);
    } finally {
      engine.dispose();
    }
  });
});
