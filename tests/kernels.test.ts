// Every forward-pass kernel except matvec (tests/matvec-variants.test.ts covers each format and
// variant) against the CPU reference on random shapes, including sizes that are
// not multiples of any workgroup size (1, 8, 172, ...). Tolerances are NMSE bounds: f32 kernels that
// only reorder sums land around 1e-14..1e-12, so 1e-10 catches any real indexing mistake.
import { describe, expect, it } from 'vitest';
import { packParams, stepLayout } from '../src/engine/gpu/params.ts';
import { createAttention } from '../src/engine/kernels/attention.ts';
import { createAdd, createSwiglu } from '../src/engine/kernels/elementwise.ts';
import { createEmbedding } from '../src/engine/kernels/embedding.ts';
import { createRmsnorm } from '../src/engine/kernels/rmsnorm.ts';
import { createRope, ropeTable } from '../src/engine/kernels/rope.ts';
import { createArgmax, createTemperatureSample } from '../src/engine/kernels/sample.ts';
import * as ref from '../src/engine/reference/ops.ts';
import { uniform } from '../src/engine/reference/rng.ts';
import { sampleToken } from '../src/engine/reference/sample.ts';
import { download, downloadF32, nmse, run, seededRandom, testKernels, upload, uploadUniform } from './helpers/gpu.ts';

const tolerance = 1e-10;
const sentinel = 12345.5;

/** An output buffer with `guard` sentinel elements after the `n` the kernel may write. */
function withGuard(n: number, guard = 16): Float32Array {
  return new Float32Array(n + guard).fill(sentinel);
}

function expectGuardIntact(out: Float32Array, n: number): void {
  expect(Array.from(out.subarray(n)).every((v) => v === sentinel)).toBe(true);
}

function stepBuffer(device: GPUDevice, pos: number, seed = 0, temperature = 0): GPUBuffer {
  return uploadUniform(device, packParams(stepLayout, { pos, seed, temperature }));
}

describe('rmsnorm', () => {
  it.each([1, 8, 172, 300])('dim %i matches the reference', async (dim) => {
    const kc = await testKernels();
    const rand = seededRandom(dim);
    const x = rand(dim, 3);
    const weight = rand(dim);
    const outBuffer = upload(kc.device, withGuard(dim));
    await run(kc.device, await createRmsnorm(kc, 'test', { x: upload(kc.device, x), weight: upload(kc.device, weight), out: outBuffer }, dim, 1e-5));
    const out = await downloadF32(kc.device, outBuffer);
    const expected = new Float32Array(dim);
    ref.rmsnorm(expected, x, weight, 1e-5);
    expect(nmse(out.subarray(0, dim), expected)).toBeLessThan(tolerance);
    expectGuardIntact(out, dim);
  });
});

describe('embedding', () => {
  it.each([
    [7, 172, 5],
    [512, 64, 0],
    [3, 1, 2],
  ])('vocab %i, dim %i gathers row %i exactly', async (vocab, dim, token) => {
    const kc = await testKernels();
    const table = seededRandom(vocab + dim)(vocab * dim);
    const outBuffer = upload(kc.device, withGuard(dim));
    const tokenBuffer = upload(kc.device, new Uint32Array([token]));
    await run(kc.device, await createEmbedding(kc, 'test', { token: tokenBuffer, table: upload(kc.device, table), out: outBuffer }, dim, vocab));
    const out = await downloadF32(kc.device, outBuffer);
    expect(Array.from(out.subarray(0, dim))).toEqual(Array.from(table.subarray(token * dim, (token + 1) * dim)));
    expectGuardIntact(out, dim);
  });
});

describe('rope with KV-cache write', () => {
  it.each([
    [8, 4, 8, 3, 2], // stories260K heads, layer 2
    [9, 3, 64, 17, 0], // SmolLM2-like heads
    [1, 1, 2, 0, 1],
    [4, 4, 6, 10, 0],
  ])('nHeads %i, nKvHeads %i, headDim %i at pos %i, layer %i', async (nHeads, nKvHeads, headDim, pos, layer) => {
    const kc = await testKernels();
    const maxSeq = 20;
    const theta = 10000;
    const qDim = nHeads * headDim;
    const kvDim = nKvHeads * headDim;
    const cacheOffset = layer * maxSeq * kvDim;
    const rand = seededRandom(nHeads * 7 + headDim + pos);
    const q = rand(qDim);
    const k = rand(kvDim);
    const v = rand(kvDim);
    const cacheSize = (layer + 1) * maxSeq * kvDim;
    const qBuffer = upload(kc.device, q);
    const keyCache = upload(kc.device, new Float32Array(cacheSize).fill(sentinel));
    const valueCache = upload(kc.device, new Float32Array(cacheSize).fill(sentinel));
    const dispatch = await createRope(
      kc,
      'test',
      {
        step: stepBuffer(kc.device, pos),
        ropeTable: upload(kc.device, ropeTable(maxSeq, headDim, theta)),
        q: qBuffer,
        k: upload(kc.device, k),
        v: upload(kc.device, v),
        keyCache,
        valueCache,
      },
      { nHeads, nKvHeads, headDim, cacheOffset },
    );
    await run(kc.device, dispatch);

    const expectedQ = q.slice();
    ref.rope(expectedQ, nHeads, headDim, pos, theta);
    const expectedK = k.slice();
    ref.rope(expectedK, nKvHeads, headDim, pos, theta);
    expect(nmse((await downloadF32(kc.device, qBuffer)).subarray(0, qDim), expectedQ)).toBeLessThan(1e-12);

    const keys = await downloadF32(kc.device, keyCache);
    const values = await downloadF32(kc.device, valueCache);
    const row = cacheOffset + pos * kvDim;
    expect(nmse(keys.subarray(row, row + kvDim), expectedK)).toBeLessThan(1e-12);
    expect(Array.from(values.subarray(row, row + kvDim))).toEqual(Array.from(v));
    // nothing else in the caches was touched
    const untouched = (cache: Float32Array) => [...cache.subarray(0, row), ...cache.subarray(row + kvDim)].every((x) => x === sentinel);
    expect(untouched(keys)).toBe(true);
    expect(untouched(values)).toBe(true);
  });
});

describe('attention', () => {
  it.each([
    // nHeads, nKvHeads (GQA ratio 1, 2, 4), headDim, pos, layer
    [4, 4, 8, 0, 0],
    [8, 4, 8, 5, 1],
    [8, 2, 16, 70, 0], // more positions than threads in the workgroup
    [3, 3, 172, 2, 0], // head wider than the workgroup
    [9, 3, 64, 33, 2],
  ])('nHeads %i, nKvHeads %i, headDim %i, pos %i, layer %i', async (nHeads, nKvHeads, headDim, pos, layer) => {
    const kc = await testKernels();
    const maxSeq = 80;
    const kvDim = nKvHeads * headDim;
    const layerSize = maxSeq * kvDim;
    const rand = seededRandom(nHeads * 100 + pos);
    const q = rand(nHeads * headDim, 2);
    const keyCache = rand((layer + 1) * layerSize, 2);
    const valueCache = rand((layer + 1) * layerSize);
    const outBuffer = upload(kc.device, withGuard(nHeads * headDim));
    const dispatch = await createAttention(
      kc,
      'test',
      {
        step: stepBuffer(kc.device, pos),
        q: upload(kc.device, q),
        keyCache: upload(kc.device, keyCache),
        valueCache: upload(kc.device, valueCache),
        scores: upload(kc.device, new Float32Array(nHeads * maxSeq)),
        out: outBuffer,
      },
      { nHeads, nKvHeads, headDim, maxSeq, cacheOffset: layer * layerSize },
    );
    await run(kc.device, dispatch);
    const out = await downloadF32(kc.device, outBuffer);
    const expected = new Float32Array(nHeads * headDim);
    const layerKeys = keyCache.subarray(layer * layerSize, (layer + 1) * layerSize);
    const layerValues = valueCache.subarray(layer * layerSize, (layer + 1) * layerSize);
    ref.attention(expected, new Float32Array(maxSeq), q, layerKeys, layerValues, pos, { nHeads, nKvHeads, headDim });
    expect(nmse(out.subarray(0, nHeads * headDim), expected)).toBeLessThan(tolerance);
    expectGuardIntact(out, nHeads * headDim);
  });
});

describe('element-wise', () => {
  it.each([1, 172, 1000])('add and swiglu on %i elements', async (n) => {
    const kc = await testKernels();
    const rand = seededRandom(n);
    const a = rand(n, 4);
    const b = rand(n, 4);
    const sumBuffer = upload(kc.device, a);
    const gateBuffer = upload(kc.device, a);
    const bBuffer = upload(kc.device, b);
    await run(kc.device, await createAdd(kc, 'add', sumBuffer, bBuffer, n), await createSwiglu(kc, 'swiglu', gateBuffer, bBuffer, n));
    const expectedSum = a.slice();
    ref.addInPlace(expectedSum, b);
    const expectedSwiglu = new Float32Array(n);
    ref.swiglu(expectedSwiglu, a, b);
    expect(nmse((await downloadF32(kc.device, sumBuffer)).subarray(0, n), expectedSum)).toBe(0);
    expect(nmse((await downloadF32(kc.device, gateBuffer)).subarray(0, n), expectedSwiglu)).toBeLessThan(tolerance);
  });
});

async function chooseToken(logits: Float32Array, temperature: number, seed: number, pos: number): Promise<number> {
  const kc = await testKernels();
  const buffers = {
    logits: upload(kc.device, logits),
    token: upload(kc.device, new Uint32Array([0xdead])),
    step: stepBuffer(kc.device, pos, seed, temperature),
  };
  const dispatch = temperature > 0 ? await createTemperatureSample(kc, 'sample', buffers, logits.length) : await createArgmax(kc, 'argmax', buffers, logits.length);
  await run(kc.device, dispatch);
  return new Uint32Array(await download(kc.device, buffers.token))[0];
}

describe('argmax', () => {
  it.each([1, 7, 512, 1000, 49152])('vocab %i matches the reference', async (vocab) => {
    const logits = seededRandom(vocab)(vocab, 10);
    expect(await chooseToken(logits, 0, 0, 0)).toBe(ref.argmax(logits));
  });

  it('breaks ties toward the lowest id, skips NaN and handles -inf', async () => {
    const logits = new Float32Array(600).fill(-Infinity);
    logits[599] = 3;
    logits[300] = 3;
    logits[10] = Number.NaN;
    expect(await chooseToken(logits, 0, 0, 0)).toBe(300);
    expect(await chooseToken(new Float32Array(300).fill(-Infinity), 0, 0, 0)).toBe(0);
    const nans = new Float32Array(9).fill(Number.NaN);
    nans[8] = -Infinity;
    expect(await chooseToken(nans, 0, 0, 0)).toBe(8);
  });
});

describe('temperature sampling', () => {
  it.each([
    [512, 1.0, 42, 3],
    [512, 0.7, 7, 100],
    [1000, 1.5, 123, 0],
    [32000, 0.9, 5, 17],
    [13, 0.5, 99, 1],
  ])('vocab %i, T %f, seed %i, pos %i picks the reference token', async (vocab, temperature, seed, pos) => {
    const logits = seededRandom(vocab + seed)(vocab, 4);
    const u = uniform(seed, pos + 1);
    expect(await chooseToken(logits, temperature, seed, pos)).toBe(sampleToken(logits, temperature, u));
  });

  it('never picks a NaN or -inf logit', async () => {
    const logits = new Float32Array(300).fill(-Infinity);
    logits[5] = Number.NaN;
    logits[200] = 1;
    logits[201] = 1;
    for (let seed = 0; seed < 6; seed++) expect([200, 201]).toContain(await chooseToken(logits, 1, seed, 4));
  });
});
