import { createReadStream, readFileSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ModelFormatError } from '../src/engine/errors.ts';
import { ggufTensor, ggufVocabulary, parseGguf } from '../src/engine/model/gguf.ts';
import { checkShapes, detectFormat, loadModelDescription } from '../src/engine/model/load.ts';
import { parseSafetensors, safetensorsTensor } from '../src/engine/model/safetensors.ts';
import { type ModelConfig, type ModelDescription, expectedShapes } from '../src/engine/model/types.ts';
import { urlSource } from '../src/engine/model/url-source.ts';
import { directorySource, openModelPath } from '../src/node/fs-source.ts';
import { memorySource } from './helpers/memory-source.ts';
import { stories260KConfig } from './helpers/stories260k.ts';
import {
  type FileDtype,
  bf16Bits,
  buildGguf,
  f16Bits,
  randomModel,
  safetensorsFromTensors,
  tinyConfig,
  toyVocabulary,
  writeGguf,
  writeHuggingFace,
  writeLlama2c,
} from './helpers/model-files.ts';

const modelsDir = fileURLToPath(new URL('../../shared/models/', import.meta.url));
const stories = join(modelsDir, 'stories260K');


/** Index of the first element whose bits differ (-1 when all match): -0 and NaN payloads count. */
function firstBitDifference(a: Float32Array, b: Float32Array): number {
  const [x, y] = [new Uint32Array(a.buffer, a.byteOffset, a.length), new Uint32Array(b.buffer, b.byteOffset, b.length)];
  return x.findIndex((v, i) => v !== y[i]);
}

/** Same tensor names, shapes and bit patterns. */
function expectSameTensors(actual: ModelDescription, expected: ModelDescription): void {
  expect([...actual.tensors.keys()].sort()).toEqual([...expected.tensors.keys()].sort());
  for (const [name, tensor] of expected.tensors) {
    const other = actual.tensors.get(name)!;
    expect(other.shape, name).toEqual(tensor.shape);
    expect(other.data.length, name).toBe(tensor.data.length);
    expect(firstBitDifference(other.data, tensor.data), name).toBe(-1);
  }
}

describe('stories260K in three formats', () => {
  let bin: ModelDescription;
  let gguf: ModelDescription;
  let hf: ModelDescription;

  beforeAll(async () => {
    const load = (path: string) => {
      const { files, entry } = openModelPath(path);
      return loadModelDescription(files, entry);
    };
    [bin, gguf, hf] = await Promise.all([
      load(join(stories, 'stories260K.bin')),
      load(join(stories, 'stories260K.gguf')),
      load(join(modelsDir, 'stories260K-hf')),
    ]);
  });

  it('reads the documented config from every format', () => {
    expect(bin.config).toEqual(stories260KConfig);
    expect(hf.config).toEqual(stories260KConfig);
    // The GGUF's llama.context_length says 2048 (llama.cpp's converter default), not the 512 the
    // model was trained with; everything else agrees.
    expect(gguf.config).toEqual({ ...stories260KConfig, maxSeqLen: 2048 });
  });

  it('gives bit-identical tensors (HF q/k rows un-permuted, GGUF dims reversed)', () => {
    expectSameTensors(gguf, bin);
    expectSameTensors(hf, bin);
  });

  it('shares one tensor for the tied classifier, even where the file stores a copy', () => {
    for (const model of [bin, gguf, hf]) expect(model.tensors.get('classifier')).toBe(model.tensors.get('tokenEmbedding'));
  });

  it('has the expected shapes and names its source', () => {
    for (const model of [bin, gguf, hf]) {
      for (const [name, shape] of expectedShapes(model.config)) expect(model.tensors.get(name)!.shape, name).toEqual(shape);
      expect(() => checkShapes(model)).not.toThrow();
    }
    expect(bin.source).toBe(`${join(stories, 'stories260K.bin')} (llama2.c)`);
    expect(gguf.source).toBe(`${join(stories, 'stories260K.gguf')} (GGUF v3)`);
    expect(hf.source).toBe(`${join(modelsDir, 'stories260K-hf')} (Hugging Face)`);
  });

  it('exposes the GGUF vocabulary for the tokenizer', async () => {
    const files = directorySource(stories);
    const vocabulary = ggufVocabulary(parseGguf(await files.read('stories260K.gguf'), files.describe('stories260K.gguf')));
    expect(vocabulary.model).toBe('llama');
    expect(vocabulary.tokens).toHaveLength(512);
    expect(vocabulary.tokens.slice(0, 4)).toEqual(['<unk>', '<s>', '</s>', '<0x00>']);
    expect(vocabulary.scores).toBeInstanceOf(Float32Array);
    expect(vocabulary.scores).toHaveLength(512);
    expect(vocabulary.scores.some((s) => s !== 0)).toBe(true);
    expect(Array.from(vocabulary.tokenTypes!.subarray(0, 4))).toEqual([2, 3, 3, 6]); // unknown, control, control, byte
    expect([vocabulary.bosId, vocabulary.eosId]).toEqual([1, 2]);
  });
});

describe('GGUF metadata arrays', () => {
  it('read right from a Node Buffer, whose slice() shares memory instead of copying', () => {
    const vocabulary = ggufVocabulary(parseGguf(readFileSync(join(stories, 'stories260K.gguf')), 'stories260K.gguf'));
    expect(vocabulary.tokens).toHaveLength(512);
    expect(vocabulary.scores).toHaveLength(512);
    expect(vocabulary.tokenTypes).toHaveLength(512);
  });
});

describe('generated models round-trip through every format', () => {
  const untied = randomModel(tinyConfig(), 7);
  const tied = randomModel(tinyConfig({ tiedEmbeddings: true, nKvHeads: 4 }), 8);

  it('llama2.c: untied (negative vocab_size) and tied', async () => {
    for (const model of [untied, tied]) {
      const loaded = await loadModelDescription(memorySource({ 'model.bin': writeLlama2c(model) }), 'model.bin');
      expect(loaded.config).toEqual(model.config);
      expectSameTensors(loaded, model);
      expect(loaded.tensors.get('classifier') === loaded.tensors.get('tokenEmbedding')).toBe(model.config.tiedEmbeddings);
    }
  });

  for (const dtype of ['f32', 'f16', 'bf16'] as FileDtype[]) {
    it(`GGUF v2 and v3 in ${dtype}`, async () => {
      for (const [model, version] of [[untied, 3], [tied, 2]] as const) {
        const loaded = await loadModelDescription(memorySource({ 'm.gguf': writeGguf(model, dtype, version) }), 'm.gguf');
        expect(loaded.config).toEqual(model.config);
        expectSameTensors(loaded, model);
        expect(loaded.tensors.get('layers.1.wk')!.sourceDtype).toBe(dtype);
      }
    });

    it(`Hugging Face safetensors in ${dtype}, in a sub-folder`, async () => {
      for (const model of [untied, tied]) {
        const folder = writeHuggingFace(model, dtype);
        const files = memorySource({ 'hub/m/config.json': folder['config.json'], 'hub/m/model.safetensors': folder['model.safetensors'] });
        const loaded = await loadModelDescription(files, 'hub/m');
        expect(loaded.config).toEqual(model.config);
        expectSameTensors(loaded, model);
        expect(loaded.tensors.get('layers.0.wq')!.sourceDtype).toBe(dtype);
      }
    });
  }

  it('GGUF vocabulary of a generated file', () => {
    const vocabulary = ggufVocabulary(parseGguf(writeGguf(untied), 'm.gguf'));
    expect(vocabulary.tokens).toEqual(toyVocabulary(32));
    expect(Array.from(vocabulary.scores.subarray(0, 3))).toEqual([-32, -31, -30]);
  });
});

describe('f16 and bf16 decoding', () => {
  // Bit patterns with their exact values: normal, negative, smallest subnormal, largest finite,
  // negative zero, infinities and NaN.
  const f16Cases: [number, number][] = [
    [0x3c00, 1], [0xc000, -2], [0x3555, 0.333251953125], [0x0001, 2 ** -24], [0x03ff, 1023 * 2 ** -24],
    [0x7bff, 65504], [0x8000, -0], [0x7c00, Infinity], [0xfc00, -Infinity], [0x7e00, NaN],
  ];
  const bf16Cases: [number, number][] = [
    [0x3f80, 1], [0xc000, -2], [0x3eab, 0.333984375], [0x0001, 2 ** -133], [0x7f7f, 3.3895313892515355e38],
    [0x8000, -0], [0x7f80, Infinity], [0xff80, -Infinity], [0x7fc0, NaN],
  ];
  const raw = (cases: [number, number][]) => new Uint8Array(Uint16Array.from(cases, ([b]) => b).buffer);

  it('decodes F16 and BF16 GGUF tensors (BF16 = ggml type 30)', () => {
    const gguf = parseGguf(
      buildGguf({
        metadata: [],
        tensors: [
          { name: 'h', shape: [2, 5], type: 1, data: raw(f16Cases) },
          { name: 'b', shape: [9], type: 30, data: raw(bf16Cases) },
        ],
      }),
      'special.gguf',
    );
    const h = ggufTensor(gguf, gguf.tensors.get('h')!);
    expect(h.shape).toEqual([2, 5]);
    expect(h.sourceDtype).toBe('f16');
    expect(Array.from(h.data)).toEqual(f16Cases.map(([, v]) => v));
    expect(Array.from(ggufTensor(gguf, gguf.tensors.get('b')!).data)).toEqual(bf16Cases.map(([, v]) => v));
  });

  it('decodes F16 and BF16 safetensors', () => {
    const st = parseSafetensors(
      safetensorsFromTensors([
        { name: 'h', dtype: 'F16', shape: [10], data: raw(f16Cases) },
        { name: 'b', dtype: 'BF16', shape: [3, 3], data: raw(bf16Cases) },
      ]),
      'special.safetensors',
    );
    expect(Array.from(safetensorsTensor(st, 'h').data)).toEqual(f16Cases.map(([, v]) => v));
    const b = safetensorsTensor(st, 'b');
    expect(b.shape).toEqual([3, 3]);
    expect(b.sourceDtype).toBe('bf16');
    expect(Array.from(b.data)).toEqual(bf16Cases.map(([, v]) => v));
  });

  it('the test encoders round to nearest even', () => {
    expect(f16Cases.every(([b, v]) => Number.isNaN(v) || f16Bits(v) === b)).toBe(true);
    expect(bf16Cases.every(([b, v]) => Number.isNaN(v) || bf16Bits(v) === b)).toBe(true);
    expect(f16Bits(1 + 2 ** -11)).toBe(0x3c00); // tie → even
    expect(f16Bits(1 + 3 * 2 ** -11)).toBe(0x3c02); // tie → even (up)
    expect(bf16Bits(1 + 2 ** -8)).toBe(0x3f80);
    expect(f16Bits(70000)).toBe(0x7c00);
  });
});

describe('file sources', () => {
  it('detects the format from the entry', () => {
    expect(detectFormat('stories260K.bin')).toBe('llama2c');
    expect(detectFormat('a/B.GGUF')).toBe('gguf');
    expect(detectFormat('')).toBe('huggingface');
    expect(detectFormat('hub/SmolLM2')).toBe('huggingface');
  });

  it('openModelPath roots files at the parent of a file and at a folder itself', () => {
    const file = openModelPath(join(stories, 'stories260K.gguf'));
    expect(file.entry).toBe('stories260K.gguf');
    expect(file.files.describe(file.entry)).toBe(join(stories, 'stories260K.gguf'));
    const folder = openModelPath(join(modelsDir, 'stories260K-hf'));
    expect(folder.entry).toBe('');
    expect(folder.files.describe('config.json')).toBe(join(modelsDir, 'stories260K-hf', 'config.json'));
  });

  it('directorySource: exists, and a missing file is a ModelFormatError', async () => {
    const files = directorySource(stories);
    expect(await files.exists('tok512.bin')).toBe(true);
    expect(await files.exists('tokenizer.json')).toBe(false);
    await expect(files.read('nope.bin')).rejects.toThrow(new ModelFormatError(join(stories, 'nope.bin'), 'not found'));
  });

  describe('urlSource over HTTP', () => {
    let server: Server;
    let base: string;

    // Serves the shared models folder and, like some static hosts, refuses HEAD.
    beforeAll(async () => {
      server = createServer(async (request, response) => {
        if (request.method === 'HEAD') return response.writeHead(405).end();
        const path = join(modelsDir, decodeURIComponent(new URL(request.url!, 'http://x').pathname));
        const info = await stat(path).catch(() => undefined);
        if (!path.startsWith(modelsDir) || !info?.isFile()) return response.writeHead(404).end();
        response.writeHead(200, { 'content-length': info.size });
        createReadStream(path).pipe(response);
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
    });
    afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

    it('loads the GGUF and the Hugging Face folder to the same tensors as from disk', async () => {
      const fromDisk = await loadModelDescription(directorySource(stories), 'stories260K.bin');
      const gguf = await loadModelDescription(urlSource(`${base}stories260K`), 'stories260K.gguf');
      const hf = await loadModelDescription(urlSource(new URL('stories260K-hf/', base)), '');
      expectSameTensors(gguf, fromDisk);
      expectSameTensors(hf, fromDisk);
      expect(hf.source).toBe(`${base}stories260K-hf/ (Hugging Face)`);
    });

    it('exists falls back to GET when HEAD is refused; 404 is "not found (HTTP 404)"', async () => {
      const files = urlSource(`${base}stories260K/`);
      expect(await files.exists('tok512.bin')).toBe(true);
      expect(await files.exists('tokenizer.json')).toBe(false);
      await expect(files.read('missing.gguf')).rejects.toThrow(
        new ModelFormatError(`${base}stories260K/missing.gguf`, 'not found (HTTP 404)'),
      );
    });
  });
});
