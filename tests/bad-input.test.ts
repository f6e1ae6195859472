// Broken model files: each must reject with a ModelFormatError whose message names the file (as the
// FileSource describes it) and says what is wrong, with numbers. Nothing may hang or read out of bounds.

import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ModelFormatError } from '../src/engine/errors.ts';
import { checkShapes, loadModelDescription } from '../src/engine/model/load.ts';
import { memorySource, type MemoryFiles } from './helpers/memory-source.ts';
import {
  buildGguf,
  buildSafetensors,
  encodeFloats,
  randomModel,
  safetensorsFromTensors,
  tinyConfig,
  writeGguf,
  writeHuggingFace,
  writeLlama2c,
} from './helpers/model-files.ts';

const prefix = 'mem://models/';

/** Loads `entry` from in-memory files and returns the ModelFormatError it must reject with. */
async function loadError(files: MemoryFiles, entry: string): Promise<ModelFormatError> {
  const error = await loadModelDescription(memorySource(files, prefix), entry).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ModelFormatError);
  return error as ModelFormatError;
}

/** Expects the error to name `file` (as described) and match every pattern. */
function expectProblem(error: ModelFormatError, file: string, ...patterns: RegExp[]): void {
  expect(error.file).toBe(prefix + file);
  expect(error.message.startsWith(`${prefix}${file}: `)).toBe(true);
  for (const pattern of patterns) expect(error.message).toMatch(pattern);
}

const model = randomModel(tinyConfig(), 3);

describe('llama2.c .bin', { timeout: 10_000 }, () => {
  it('truncated stories260K.bin says how many bytes the header needs', async () => {
    const real = await readFile(fileURLToPath(new URL('../../shared/models/stories260K/stories260K.bin', import.meta.url)));
    const error = await loadError({ 'stories260K.bin': new Uint8Array(real.subarray(0, 1000)) }, 'stories260K.bin');
    expectProblem(error, 'stories260K.bin', /file is 1000 bytes/, /dim 64, hidden_dim 172, 5 layers, 8 heads, 4 kv heads, vocab_size 512, seq_len 512/, /needs 1056540 bytes/);
  });

  it('a file shorter than the header', async () => {
    expectProblem(await loadError({ 'm.bin': new Uint8Array(10) }, 'm.bin'), 'm.bin', /10 bytes, shorter than the 28-byte llama2.c header/);
  });

  it('trailing bytes are not silently ignored', async () => {
    const bytes = writeLlama2c(model);
    const longer = new Uint8Array(bytes.length + 4);
    longer.set(bytes);
    expectProblem(await loadError({ 'm.bin': longer }, 'm.bin'), 'm.bin', new RegExp(`file is ${longer.length} bytes .* needs ${bytes.length} bytes`));
  });

  it('impossible header values', async () => {
    const header = (values: number[]) => new Uint8Array(Int32Array.from(values).buffer);
    expectProblem(await loadError({ 'm.bin': header([64, 172, 5, 0, 4, 512, 512]) }, 'm.bin'), 'm.bin', /n_heads is 0, must be positive/);
    expectProblem(await loadError({ 'm.bin': header([64, 172, 5, 8, 3, 512, 512]) }, 'm.bin'), 'm.bin', /n_heads 8 is not a multiple of n_kv_heads 3/);
    expectProblem(await loadError({ 'm.bin': header([0x616b3432, 0, 0, 0, 0, 0, 0]) }, 'm.bin'), 'm.bin', /'ak42' magic/);
  });
});

describe('GGUF', { timeout: 10_000 }, () => {
  it('bad magic', async () => {
    const bytes = writeGguf(model);
    bytes.set([0x47, 0x47, 0x4a, 0x54]); // "GGJT", an older llama.cpp format
    expectProblem(await loadError({ 'm.gguf': bytes }, 'm.gguf'), 'm.gguf', /bad magic "GGJT"/, /not a GGUF file/);
  });

  it('an unsupported quantized type and an unknown tensor type name the tensor and the type', async () => {
    // The generated model with its first wq retyped as 12 (Q4_K, not supported yet) or 99 (no such type).
    for (const [type, name] of [[12, 'Q4_K'], [99, 'unknown']] as const) {
      const bytes = ggufWithRetypedTensor(type);
      expectProblem(await loadError({ 'm.gguf': bytes }, 'm.gguf'), 'm.gguf', new RegExp(`tensor blk\\.0\\.attn_q\\.weight has type ${type} \\(${name}\\)`));
    }
  });

  it('unsupported version', async () => {
    const bytes = writeGguf(model);
    bytes.set([1, 0, 0, 0], 4);
    expectProblem(await loadError({ 'm.gguf': bytes }, 'm.gguf'), 'm.gguf', /GGUF version 1 is not supported/);
  });

  it('truncated anywhere: in the metadata, the tensor infos or the data', async () => {
    const bytes = writeGguf(model);
    for (const length of [3, 20, 100, 1000, bytes.length - 1]) {
      const error = await loadError({ 'm.gguf': bytes.subarray(0, length) }, 'm.gguf');
      expectProblem(error, 'm.gguf', /file is \d+ bytes|data section/);
    }
  });

  it('a huge array length is refused before anything is allocated', async () => {
    const bytes = buildGguf({ metadata: [{ key: 'a', type: 'array', elementType: 'string', value: [] }], tensors: [] });
    // The array's u64 length sits after: magic, version, 2 counts, key (8 + 1), type, element type.
    new DataView(bytes.buffer).setBigUint64(4 + 4 + 8 + 8 + 9 + 4 + 4, 1n << 40n, true);
    expectProblem(await loadError({ 'm.gguf': bytes }, 'm.gguf'), 'm.gguf', /metadata a at byte \d+ needs 8796093022208 bytes/);
  });

  it('missing tensors and metadata are named', async () => {
    const noKv = buildGguf({
      metadata: [{ key: 'general.architecture', type: 'string', value: 'llama' }, { key: 'llama.block_count', type: 'u32', value: 1 }],
      tensors: [],
    });
    expectProblem(await loadError({ 'm.gguf': noKv }, 'm.gguf'), 'm.gguf', /tensor token_embd.weight is missing/);
    const qwen = buildGguf({ metadata: [{ key: 'general.architecture', type: 'string', value: 'qwen2' }], tensors: [] });
    expectProblem(await loadError({ 'm.gguf': qwen }, 'm.gguf'), 'm.gguf', /architecture "qwen2" is not supported/);
  });
});

/** The generated model as GGUF with blk.0.attn_q.weight stored under another ggml type. */
function ggufWithRetypedTensor(type: number): Uint8Array {
  const bytes = writeGguf(model);
  const name = new TextEncoder().encode('blk.0.attn_q.weight');
  // Tensor info: name, u32 n_dims (2), 2 x u64 dims, then the u32 type.
  const at = indexOf(bytes, name) + name.length + 4 + 16;
  new DataView(bytes.buffer).setUint32(at, type, true);
  return bytes;
}

function indexOf(haystack: Uint8Array, needle: Uint8Array): number {
  for (let i = 0; i + needle.length <= haystack.length; i++) {
    if (needle.every((b, j) => haystack[i + j] === b)) return i;
  }
  throw new Error('not found');
}

describe('safetensors', { timeout: 10_000 }, () => {
  const hf = writeHuggingFace(model);
  const config = hf['config.json'];
  const load = (weights: Uint8Array) => loadError({ 'config.json': config, 'model.safetensors': weights }, '');
  const f32 = (n: number) => encodeFloats(new Float32Array(n), 'f32');

  it('a range past the end of the data section', async () => {
    const bytes = buildSafetensors({ a: { dtype: 'F32', shape: [4], data_offsets: [0, 16] }, b: { dtype: 'F32', shape: [4], data_offsets: [16, 32] } }, f32(6));
    expectProblem(await load(bytes), 'model.safetensors', /tensor b data_offsets \[16, 32\] lie outside the 24-byte data section/);
  });

  it('overlapping ranges', async () => {
    const bytes = buildSafetensors({ a: { dtype: 'F32', shape: [4], data_offsets: [0, 16] }, b: { dtype: 'F32', shape: [4], data_offsets: [8, 24] } }, f32(6));
    expectProblem(await load(bytes), 'model.safetensors', /tensors a \[0, 16\] and b \[8, 24\] overlap/);
  });

  it('a size that does not match the shape', async () => {
    const bytes = buildSafetensors({ a: { dtype: 'F16', shape: [2, 3], data_offsets: [0, 16] } }, f32(4));
    expectProblem(await load(bytes), 'model.safetensors', /tensor a has 16 bytes but its shape \[2, 3\] of F16 needs 12/);
  });

  it('a truncated file', async () => {
    const whole = hf['model.safetensors'];
    expectProblem(await load(whole.subarray(0, 5)), 'model.safetensors', /file is 5 bytes but the header length at byte 0 needs 8 bytes/);
    expectProblem(await load(whole.subarray(0, 100)), 'model.safetensors', /header length \d+ runs past the end of the 100-byte file/);
    const cut = whole.subarray(0, whole.length - 10);
    expectProblem(await load(cut), 'model.safetensors', /lie outside the \d+-byte data section/);
  });

  it('a header that is not JSON, and unknown or unsupported dtypes', async () => {
    const notJson = new Uint8Array([4, 0, 0, 0, 0, 0, 0, 0, ...new TextEncoder().encode('{oops')]);
    expectProblem(await load(notJson), 'model.safetensors', /header \(4 bytes\) is not valid JSON/);
    const unknown = buildSafetensors({ a: { dtype: 'F12', shape: [1], data_offsets: [0, 4] } }, f32(1));
    expectProblem(await load(unknown), 'model.safetensors', /tensor a has unknown dtype "F12"/);
    const ints = safetensorsFromTensors([{ name: 'model.embed_tokens.weight', dtype: 'I32', shape: [32, 16], data: f32(512) }]);
    expectProblem(await load(ints), 'model.safetensors', /tensor model.embed_tokens.weight has dtype I32; only F32, F16 and BF16 are supported/);
  });

  it('missing and unexpected tensors', async () => {
    const missing = safetensorsFromTensors([{ name: 'model.embed_tokens.weight', dtype: 'F32', shape: [32, 16], data: f32(512) }]);
    expectProblem(await load(missing), 'model.safetensors', /tensor model\.norm\.weight is missing/);
    const extra = safetensorsFromTensors([{ name: 'model.layers.0.self_attn.q_proj.bias', dtype: 'F32', shape: [16], data: f32(16) }]);
    expectProblem(await load(extra), 'model.safetensors', /unexpected tensors: model\.layers\.0\.self_attn\.q_proj\.bias/);
  });
});

describe('Hugging Face config.json', { timeout: 10_000 }, () => {
  const weights = writeHuggingFace(model)['model.safetensors'];
  const load = (config: string) => loadError({ 'm/config.json': config, 'm/model.safetensors': weights }, 'm');
  const good = JSON.parse(writeHuggingFace(model)['config.json']) as Record<string, unknown>;

  it('not JSON', async () => {
    expectProblem(await load('{"hidden_size": 16,'), 'm/config.json', /is not valid JSON/);
  });

  it('missing keys are listed', async () => {
    const { hidden_size: _h, rms_norm_eps: _e, ...rest } = good;
    expectProblem(await load(JSON.stringify(rest)), 'm/config.json', /missing required keys: hidden_size, rms_norm_eps/);
  });

  it('wrong types and unsupported models', async () => {
    expectProblem(await load(JSON.stringify({ ...good, num_hidden_layers: '2' })), 'm/config.json', /num_hidden_layers is "2", expected a number/);
    expectProblem(await load(JSON.stringify({ ...good, model_type: 'mistral', architectures: ['MistralForCausalLM'] })), 'm/config.json', /model_type "mistral" .* is not supported/);
    expectProblem(await load(JSON.stringify({ ...good, rope_scaling: { rope_type: 'yarn', factor: 4 } })), 'm/config.json', /rope_scaling .* is not supported/);
  });

  it('a config that disagrees with the weights names the folder and the shapes', async () => {
    const error = await load(JSON.stringify({ ...good, intermediate_size: 32 }));
    expect(error.message).toMatch(/^mem:\/\/models\/m \(Hugging Face\): tensor layers\.0\.w1 has shape \[24, 16\] but the config needs \[32, 16\]/);
  });

  it('a missing file', async () => {
    const error = await loadError({ 'm/config.json': JSON.stringify(good) }, 'm');
    expectProblem(error, 'm/model.safetensors', /not found/);
  });
});

describe('checkShapes', () => {
  it('rejects an unsound config and a classifier that breaks the tying rule', () => {
    const broken = randomModel(tinyConfig(), 4);
    broken.config.headDim = 3;
    expect(() => checkShapes(broken)).toThrow(/config headDim 3 is odd/);
    const untied = randomModel(tinyConfig({ tiedEmbeddings: true }), 4);
    untied.tensors.set('classifier', { ...untied.tensors.get('tokenEmbedding')! });
    expect(() => checkShapes(untied)).toThrow(/config says tiedEmbeddings true but the classifier is not the embedding tensor/);
  });
});
