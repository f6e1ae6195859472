// The rows (batched) kernels against the CPU reference and against the single-vector kernels, for
// one row and for five rows of two sequences at scattered positions, with block tables whose pages
// are out of order. Each batch also runs on a grid limited to 2 workgroups per dimension, so rows
// spill into the next grid dimension and the grid holds one slot past the last row.
import { describe, expect, it } from 'vitest';
import type { KernelContext } from '../src/engine/gpu/kernel.ts';
import { packParams, stepLayout } from '../src/engine/gpu/params.ts';
import { createEmbedding } from '../src/engine/kernels/embedding.ts';
import { createRmsnorm } from '../src/engine/kernels/rmsnorm.ts';
import { createRope, ropeTable } from '../src/engine/kernels/rope.ts';
import {
  createRowsEmbedding,
  createRowsRmsnorm,
  createRowsRope,
  createRowsSampler,
  packRowInfo,
  rowInfoWords,
  type RowInfo,
} from '../src/engine/kernels/rows.ts';
import { createArgmax, createTemperatureSample } from '../src/engine/kernels/sample.ts';
import { pageElementOffset, type PageLayout } from '../src/engine/kv/page-pool.ts';
import * as ref from '../src/engine/reference/ops.ts';
import { uniform } from '../src/engine/reference/rng.ts';
import { sampleToken } from '../src/engine/reference/sample.ts';
import { download, downloadF32, nmse, run, seededRandom, testKernels, upload, uploadUniform } from './helpers/gpu.ts';

const sentinel = 12345.5;
const tokenSentinel = 0xdead;
const guard = 16;
const blockSize = 8;
const pageCount = 6;
const maxSeq = 24;
const theta = 10000;

// Block tables (logical block -> physical page) of two sequences, neither in page order.
const blockTables = { a: [4, 1], b: [2, 5, 0] } as const;

function row(sequence: keyof typeof blockTables, position: number, token: number, seed: number, temperature: number): RowInfo {
  return { token, position, page: blockTables[sequence][Math.floor(position / blockSize)], slot: position % blockSize, seed, temperature };
}

const oneRow = [row('b', 10, 36, 11, 0.9)];
const fiveRows = [
  row('a', 3, 5, 7, 0), // page 4, slot 3
  row('b', 17, 36, 21, 1.3), // page 0, slot 1
  row('a', 9, 0, 7, 0), // page 1, slot 1
  row('b', 0, 12, 21, 0.8), // page 2, slot 0
  row('b', 12, 5, 21, 1), // page 5, slot 4
];

// [name, rows, grid limit per dimension (undefined: the adapter's)]
const batches: [string, RowInfo[], number | undefined][] = [
  ['1 row', oneRow, undefined],
  ['5 rows', fiveRows, undefined],
  ['5 rows on a 2-per-dimension grid', fiveRows, 2],
];

const contexts = new Map<number | undefined, Promise<KernelContext>>();

/** One kernel context per grid limit, so each test file compiles a pipeline once. */
function kernels(maxWorkgroupsPerDimension: number | undefined): Promise<KernelContext> {
  let kc = contexts.get(maxWorkgroupsPerDimension);
  if (!kc) {
    kc = testKernels(maxWorkgroupsPerDimension);
    contexts.set(maxWorkgroupsPerDimension, kc);
  }
  return kc;
}

/** `n` values followed by `guard` sentinels the kernel must not write. */
function withGuard(values: Float32Array): Float32Array {
  const out = new Float32Array(values.length + guard).fill(sentinel);
  out.set(values);
  return out;
}

function expectGuardIntact(out: Float32Array, n: number): void {
  expect(Array.from(out.subarray(n))).toEqual(new Array(out.length - n).fill(sentinel));
}

function stepBuffer(device: GPUDevice, pos: number, seed = 0, temperature = 0): GPUBuffer {
  return uploadUniform(device, packParams(stepLayout, { pos, seed, temperature }));
}

describe('packRowInfo', () => {
  it('packs 9 words per row: the temperature, top-p and min-p as f32 bits, the cuts off by default', () => {
    const into = new Uint32Array(3 * rowInfoWords).fill(7);
    const packed = packRowInfo(fiveRows.slice(0, 2), into);
    expect(packed).toHaveLength(2 * rowInfoWords);
    const bits = (v: number) => new Uint32Array(Float32Array.of(v).buffer)[0];
    expect(Array.from(packed)).toEqual([5, 3, 4, 3, 7, 0, 0, bits(1), 0, 36, 17, 0, 1, 21, bits(1.3), 0, bits(1), 0]);
    const cut = packRowInfo([{ ...fiveRows[0], filters: { topK: 40, topP: 0.9, minP: 0.05 } }]);
    expect(Array.from(cut.subarray(6))).toEqual([40, bits(0.9), bits(0.05)]);
    expect(Array.from(into.subarray(2 * rowInfoWords))).toEqual(new Array(rowInfoWords).fill(7));
  });

  it('refuses values that are not u32 and negative temperatures', () => {
    expect(() => packRowInfo([{ ...oneRow[0], page: -1 }])).toThrow(/page = -1 is not a u32/);
    expect(() => packRowInfo([{ ...oneRow[0], seed: 2 ** 32 }])).toThrow(/seed/);
    expect(() => packRowInfo([{ ...oneRow[0], temperature: -0.5 }])).toThrow(/temperature/);
    expect(() => packRowInfo(fiveRows, new Uint32Array(8))).toThrow(/needs 45 words/);
  });
});

describe('rows embedding', () => {
  it.each(batches)('%s gathers each row of a vocab 37, dim 172 table', async (_, rows, limit) => {
    const kc = await kernels(limit);
    const vocab = 37;
    const dim = 172;
    const table = seededRandom(vocab * dim)(vocab * dim);
    const out = upload(kc.device, withGuard(new Float32Array(rows.length * dim)));
    const b = { rowInfo: upload(kc.device, packRowInfo(rows)), table: upload(kc.device, table), out };
    await run(kc.device, await createRowsEmbedding(kc, 'rows embedding', b, { dim, vocab, rows: rows.length }));
    const got = await downloadF32(kc.device, out);
    rows.forEach(({ token }, r) => {
      expect(Array.from(got.subarray(r * dim, (r + 1) * dim))).toEqual(Array.from(table.subarray(token * dim, (token + 1) * dim)));
    });
    expectGuardIntact(got, rows.length * dim);
  });

  it('one row equals the single-vector kernel bit for bit', async () => {
    const kc = await kernels(undefined);
    const vocab = 37;
    const dim = 172;
    const table = upload(kc.device, seededRandom(1)(vocab * dim));
    const rowsOut = upload(kc.device, new Float32Array(dim));
    const singleOut = upload(kc.device, new Float32Array(dim));
    await run(
      kc.device,
      await createRowsEmbedding(kc, 'rows', { rowInfo: upload(kc.device, packRowInfo(oneRow)), table, out: rowsOut }, { dim, vocab, rows: 1 }),
      await createEmbedding(kc, 'single', { token: upload(kc.device, Uint32Array.of(oneRow[0].token)), table, out: singleOut }, dim, vocab),
    );
    expect(await downloadF32(kc.device, rowsOut)).toEqual(await downloadF32(kc.device, singleOut));
  });
});

describe('rows rmsnorm', () => {
  describe.each([172, 37])('dim %i', (dim) => {
    it.each(batches)('%s: each row normalized on its own', async (_, rows, limit) => {
      const kc = await kernels(limit);
      const rand = seededRandom(dim + rows.length);
      // Rows of different scales: a norm shared across rows would be far off for most of them.
      const x = new Float32Array(rows.length * dim);
      rows.forEach((_, r) => x.set(rand(dim, 1 + 3 * r), r * dim));
      const weight = rand(dim);
      const out = upload(kc.device, withGuard(new Float32Array(rows.length * dim)));
      const b = { x: upload(kc.device, x), weight: upload(kc.device, weight), out };
      await run(kc.device, await createRowsRmsnorm(kc, 'rows rmsnorm', b, { dim, eps: 1e-5, rows: rows.length }));
      const got = await downloadF32(kc.device, out);
      rows.forEach((_, r) => {
        const expected = new Float32Array(dim);
        ref.rmsnorm(expected, x.subarray(r * dim, (r + 1) * dim), weight, 1e-5);
        expect(nmse(got.subarray(r * dim, (r + 1) * dim), expected)).toBeLessThan(1e-10);
      });
      expectGuardIntact(got, rows.length * dim);
    });

    it('one row equals the single-vector kernel bit for bit', async () => {
      const kc = await kernels(undefined);
      const rand = seededRandom(dim);
      const x = upload(kc.device, rand(dim, 3));
      const weight = upload(kc.device, rand(dim));
      const rowsOut = upload(kc.device, new Float32Array(dim));
      const singleOut = upload(kc.device, new Float32Array(dim));
      await run(
        kc.device,
        await createRowsRmsnorm(kc, 'rows', { x, weight, out: rowsOut }, { dim, eps: 1e-5, rows: 1 }),
        await createRmsnorm(kc, 'single', { x, weight, out: singleOut }, dim, 1e-5),
      );
      expect(await downloadF32(kc.device, rowsOut)).toEqual(await downloadF32(kc.device, singleOut));
    });
  });
});

describe('rows rope with paged KV write', () => {
  const nLayers = 3;

  // [nHeads, nKvHeads, headDim]: 54 and 170 threads per row, neither a multiple of 64
  describe.each([
    [9, 3, 6],
    [4, 2, 34],
  ])('nHeads %i, nKvHeads %i, headDim %i', (nHeads, nKvHeads, headDim) => {
    const qDim = nHeads * headDim;
    const kvDim = nKvHeads * headDim;
    const layout: PageLayout = { nLayers, kvDim, blockSize };
    const poolLength = pageCount * nLayers * 2 * blockSize * kvDim;

    it.each(batches)('%s: q rotated, K and V written to their pages in layers 0 and 2, nothing else', async (_, rows, limit) => {
      const kc = await kernels(limit);
      const rand = seededRandom(qDim + rows.length);
      const pool = upload(kc.device, new Float32Array(poolLength).fill(sentinel));
      const table = upload(kc.device, ropeTable(maxSeq, headDim, theta));
      const rowInfo = upload(kc.device, packRowInfo(rows));
      const layers = [0, 2].map((layer) => ({ layer, q: rand(rows.length * qDim), k: rand(rows.length * kvDim), v: rand(rows.length * kvDim) }));
      const qBuffers = layers.map(({ q }) => upload(kc.device, q));
      const dispatches = await Promise.all(
        layers.map(({ layer, k, v }, l) =>
          createRowsRope(
            kc,
            `rows rope ${layer}`,
            { rowInfo, ropeTable: table, q: qBuffers[l], k: upload(kc.device, k), v: upload(kc.device, v), kvPool: pool },
            { nHeads, nKvHeads, headDim, nLayers, layer, blockSize, rows: rows.length },
          ),
        ),
      );
      await run(kc.device, ...dispatches);
      const got = await downloadF32(kc.device, pool);

      const written = new Set<number>();
      for (const [l, { layer, q, k, v }] of layers.entries()) {
        const gotQ = await downloadF32(kc.device, qBuffers[l]);
        rows.forEach(({ position, page, slot }, r) => {
          const expectedQ = q.slice(r * qDim, (r + 1) * qDim);
          ref.rope(expectedQ, nHeads, headDim, position, theta);
          expect(nmse(gotQ.subarray(r * qDim, (r + 1) * qDim), expectedQ)).toBeLessThan(1e-12);

          const expectedK = k.slice(r * kvDim, (r + 1) * kvDim);
          ref.rope(expectedK, nKvHeads, headDim, position, theta);
          const keyAt = pageElementOffset(layout, page, layer, 0, slot, 0);
          const valueAt = pageElementOffset(layout, page, layer, 1, slot, 0);
          expect(nmse(got.subarray(keyAt, keyAt + kvDim), expectedK)).toBeLessThan(1e-12);
          expect(Array.from(got.subarray(valueAt, valueAt + kvDim))).toEqual(Array.from(v.subarray(r * kvDim, (r + 1) * kvDim)));
          for (let i = 0; i < kvDim; i++) written.add(keyAt + i).add(valueAt + i);
        });
      }
      expect(written.size).toBe(2 * layers.length * rows.length * kvDim);
      const strays = [];
      for (let i = 0; i < got.length; i++) if (!written.has(i) && got[i] !== sentinel) strays.push(i);
      expect(strays).toEqual([]);
    });

    it('one row equals the single-vector kernel bit for bit', async () => {
      const kc = await kernels(undefined);
      const rand = seededRandom(qDim);
      const [{ position, page, slot }] = oneRow;
      const layer = 1;
      const q = rand(qDim);
      const k = upload(kc.device, rand(kvDim));
      const v = upload(kc.device, rand(kvDim));
      const table = upload(kc.device, ropeTable(maxSeq, headDim, theta));
      const rowsQ = upload(kc.device, q);
      const singleQ = upload(kc.device, q);
      const pool = upload(kc.device, new Float32Array(poolLength));
      const keyCache = upload(kc.device, new Float32Array(nLayers * maxSeq * kvDim));
      const valueCache = upload(kc.device, new Float32Array(nLayers * maxSeq * kvDim));
      const cacheOffset = layer * maxSeq * kvDim;
      await run(
        kc.device,
        await createRowsRope(
          kc,
          'rows',
          { rowInfo: upload(kc.device, packRowInfo(oneRow)), ropeTable: table, q: rowsQ, k, v, kvPool: pool },
          { nHeads, nKvHeads, headDim, nLayers, layer, blockSize, rows: 1 },
        ),
        await createRope(kc, 'single', { step: stepBuffer(kc.device, position), ropeTable: table, q: singleQ, k, v, keyCache, valueCache }, { nHeads, nKvHeads, headDim, cacheOffset }),
      );
      expect(await downloadF32(kc.device, rowsQ)).toEqual(await downloadF32(kc.device, singleQ));
      const got = await downloadF32(kc.device, pool);
      const keyAt = pageElementOffset(layout, page, layer, 0, slot, 0);
      const valueAt = pageElementOffset(layout, page, layer, 1, slot, 0);
      const cacheRow = cacheOffset + position * kvDim;
      expect(got.subarray(keyAt, keyAt + kvDim)).toEqual((await downloadF32(kc.device, keyCache)).subarray(cacheRow, cacheRow + kvDim));
      expect(got.subarray(valueAt, valueAt + kvDim)).toEqual((await downloadF32(kc.device, valueCache)).subarray(cacheRow, cacheRow + kvDim));
    });
  });
});

describe('rows sampler', () => {
  /** The token the single-vector kernels pick for one sequence's step at `position`. */
  async function singleVectorToken(kc: KernelContext, logits: Float32Array, { position, seed, temperature }: RowInfo): Promise<number> {
    const b = { logits: upload(kc.device, logits), token: upload(kc.device, Uint32Array.of(tokenSentinel)), step: stepBuffer(kc.device, position, seed, temperature) };
    const vocab = logits.length;
    await run(kc.device, temperature > 0 ? await createTemperatureSample(kc, 'single', b, vocab) : await createArgmax(kc, 'single', b, vocab));
    return new Uint32Array(await download(kc.device, b.token))[0];
  }

  describe.each([37, 1000])('vocab %i', (vocab) => {
    it.each(batches)('%s: each row picks the reference token, greedy or sampled', async (_, rows, limit) => {
      const kc = await kernels(limit);
      const logits = seededRandom(vocab + rows.length)(rows.length * vocab, 2);
      // A tie for the maximum in the first greedy row: the lower id wins.
      const tied = rows.findIndex((r) => r.temperature === 0);
      if (tied >= 0) logits.fill(5, tied * vocab + vocab - 3, tied * vocab + vocab).fill(5, tied * vocab + 4, tied * vocab + 5);
      const tokens = upload(kc.device, new Uint32Array(rows.length + guard).fill(tokenSentinel));
      const b = { rowInfo: upload(kc.device, packRowInfo(rows)), logits: upload(kc.device, logits), tokens };
      await run(kc.device, await createRowsSampler(kc, 'rows sampler', b, { vocab, rows: rows.length }));
      const got = Array.from(new Uint32Array(await download(kc.device, tokens)));

      const expected = rows.map((r, i) => sampleToken(logits.subarray(i * vocab, (i + 1) * vocab), r.temperature, uniform(r.seed, r.position + 1)));
      expect(got.slice(0, rows.length)).toEqual(expected);
      if (tied >= 0) expect(got[tied]).toBe(4);
      expect(got.slice(rows.length)).toEqual(new Array(guard).fill(tokenSentinel));

      const singleVector = [];
      for (const [i, r] of rows.entries()) singleVector.push(await singleVectorToken(kc, logits.slice(i * vocab, (i + 1) * vocab), r));
      expect(got.slice(0, rows.length)).toEqual(singleVector);
    });
  });

  it('a sampled row draws with its own seed and position', async () => {
    const kc = await kernels(undefined);
    const vocab = 37;
    // Flat logits: the draw alone decides, so any other (seed, position) would pick differently.
    const logits = new Float32Array(3 * vocab);
    const rows = [row('a', 3, 0, 5, 1), row('a', 3, 0, 9, 1), row('b', 12, 0, 5, 1)];
    const tokens = upload(kc.device, new Uint32Array(rows.length));
    const b = { rowInfo: upload(kc.device, packRowInfo(rows)), logits: upload(kc.device, logits), tokens };
    await run(kc.device, await createRowsSampler(kc, 'rows sampler', b, { vocab, rows: rows.length }));
    const got = Array.from(new Uint32Array(await download(kc.device, tokens))).slice(0, rows.length);
    expect(got).toEqual(rows.map((r, i) => sampleToken(logits.subarray(i * vocab, (i + 1) * vocab), 1, uniform(r.seed, r.position + 1))));
    expect(got).toEqual([31, 22, 29]);
  });
});
