// Paged decode attention (shaders/paged-attention.wgsl), every variant, against the f64 CPU
// reference, the online-softmax reference of its partials, the contiguous attention kernel, and
// (unfused) the reference's softmax rows.
// The pool holds NaN wherever the kernel must not read (other layers, unused pages, slots past a
// sequence's end), so a stray read poisons the output; block tables are shuffled so pages are
// never contiguous; lengths are not multiples of the block, tile or chunk.
import { describe, expect, it } from 'vitest';
import type { AdapterReport } from '../src/engine/engine.ts';
import { packParams, stepLayout } from '../src/engine/gpu/params.ts';
import { createAttention } from '../src/engine/kernels/attention.ts';
import {
  createPagedAttention,
  missingPagedAttentionRequirements,
  packSeqInfo,
  pagedAttentionChunks,
  pagedAttentionPartialsLength,
  pagedAttentionScoresLength,
  pagedAttentionVariants,
  type PagedAttentionVariantName,
  type PagedAttentionShape,
  type SequenceSlot,
} from '../src/engine/kernels/paged-attention.ts';
import { RequestError } from '../src/engine/errors.ts';
import { attendSequence, attentionProbabilities, chunkedAttention, chunkPartial, gatherSequence, pagedAttention, pagedRowOffset } from '../src/engine/reference/paged-attention.ts';
import { downloadF32, maxAbsDiff, nmse, run, seededRandom, testKernels, upload, uploadUniform } from './helpers/gpu.ts';

const tolerance = 1e-9; // NMSE: f32 kernels that only reorder sums land near 1e-14
const maxAbsError = 1e-5; // outputs are averages of values in [-1, 1)
const sentinel = 12345.5;
const guard = 16;

interface Case {
  nHeads: number;
  nKvHeads: number;
  headDim: number;
  blockSize: number;
  lengths: number[];
  workgroupSize: number;
  chunkSize: number;
}

/** A pool of NaN with the attended tokens of `layer` filled in, and each sequence's shuffled pages. */
function buildPool(c: Case, nLayers: number, layer: number, seed: number) {
  const rand = seededRandom(seed);
  const kvDim = c.nKvHeads * c.headDim;
  const layout = { nLayers, blockSize: c.blockSize, kvDim };
  const blocks = c.lengths.map((l) => Math.ceil(l / c.blockSize));
  const nPages = blocks.reduce((a, b) => a + b, 0) + 3; // 3 pages nobody owns
  const pages = Array.from({ length: nPages }, (_, p) => p);
  for (let i = nPages - 1; i > 0; i--) {
    const j = Math.floor(((rand(1)[0] + 1) / 2) * (i + 1)); // Fisher-Yates
    [pages[i], pages[j]] = [pages[j], pages[i]];
  }
  const pool = new Float32Array(nPages * nLayers * 2 * c.blockSize * kvDim).fill(Number.NaN);
  const blockTable = new Uint32Array(pages.slice(0, nPages - 3));
  const sequences: SequenceSlot[] = [];
  let offset = 0;
  for (const [s, length] of c.lengths.entries()) {
    sequences.push({ blockTableOffset: offset, length });
    for (let t = 0; t < length; t++) {
      const page = blockTable[offset + Math.floor(t / c.blockSize)];
      pool.set(rand(kvDim, 2), pagedRowOffset(layout, page, layer, 0, t % c.blockSize));
      pool.set(rand(kvDim), pagedRowOffset(layout, page, layer, 1, t % c.blockSize));
    }
    offset += blocks[s];
  }
  return { pool, blockTable, sequences, layout };
}

/** Each variant's grid, pass by pass. */
function expectedGrids(shape: PagedAttentionShape): Record<PagedAttentionVariantName, number[][]> {
  const { nHeads, batch } = shape;
  return {
    whole: [[nHeads, 1, batch]],
    splitK: [[nHeads, pagedAttentionChunks(shape), batch], [nHeads, 1, batch]],
    unfused: [[nHeads, Math.ceil(shape.maxLength / shape.workgroupSize), batch], [nHeads, 1, batch], [nHeads, 1, batch]],
  };
}

async function runPaged(c: Case, nLayers: number, layer: number, seed: number, maxLength = 128) {
  const kc = await testKernels();
  const { pool, blockTable, sequences, layout } = buildPool(c, nLayers, layer, seed);
  const batch = c.lengths.length;
  const shape: PagedAttentionShape = { ...c, nLayers, layer, batch, maxLength };
  const qDim = c.nHeads * c.headDim;
  const q = seededRandom(seed + 1)(batch * qDim, 2);

  const expected = new Float32Array(batch * qDim);
  pagedAttention(expected, q, pool, blockTable, sequences, c, { nLayers, blockSize: c.blockSize, layer });

  const buffers = {
    q: upload(kc.device, q),
    kvPool: upload(kc.device, pool),
    blockTable: upload(kc.device, blockTable),
    seqInfo: upload(kc.device, packSeqInfo(sequences)),
  };
  const outputs: Record<string, Float32Array> = {};
  const partialsLength = pagedAttentionPartialsLength(shape);
  const partialsBuffer = upload(kc.device, new Float32Array(partialsLength + guard).fill(sentinel));
  const scoresBuffer = upload(kc.device, new Float32Array(pagedAttentionScoresLength(shape) + guard).fill(sentinel));
  for (const variant of pagedAttentionVariants) {
    const out = upload(kc.device, new Float32Array(batch * qDim + guard).fill(sentinel));
    const dispatches = await createPagedAttention(kc, variant.name, { ...buffers, out, partials: partialsBuffer, scores: scoresBuffer }, shape, variant.name);
    expect(dispatches.map((d) => d.workgroups)).toEqual(expectedGrids(shape)[variant.name]);
    await run(kc.device, ...dispatches);
    outputs[variant.name] = await downloadF32(kc.device, out);
  }
  const partials = await downloadF32(kc.device, partialsBuffer);
  const scores = await downloadF32(kc.device, scoresBuffer);
  return { kc, shape, q, pool, blockTable, sequences, layout, expected, outputs, partials, scores, qDim };
}

function expectGuardIntact(values: Float32Array, n: number): void {
  expect(values.length).toBe(n + guard);
  expect(Array.from(values.subarray(n)).every((v) => v === sentinel)).toBe(true);
}

const cases: [string, Case][] = [
  ['L 1, MHA', { nHeads: 4, nKvHeads: 4, headDim: 8, blockSize: 8, lengths: [1], workgroupSize: 16, chunkSize: 32 }],
  ['L 7, GQA 2', { nHeads: 4, nKvHeads: 2, headDim: 16, blockSize: 16, lengths: [7], workgroupSize: 16, chunkSize: 32 }],
  ['L 37, GQA 4, block 32', { nHeads: 4, nKvHeads: 1, headDim: 8, blockSize: 32, lengths: [37], workgroupSize: 16, chunkSize: 32 }],
  ['L 100, GQA 2, block 8', { nHeads: 4, nKvHeads: 2, headDim: 8, blockSize: 8, lengths: [100], workgroupSize: 16, chunkSize: 32 }],
  // 8 threads for 16 dims (two per thread); chunks of 24 end mid-tile
  ['L 100, GQA 4, head wider than the workgroup', { nHeads: 4, nKvHeads: 1, headDim: 16, blockSize: 16, lengths: [100], workgroupSize: 8, chunkSize: 24 }],
  // the default tiling: one tile for the whole context, one chunk
  ['L 100, default tiling', { nHeads: 4, nKvHeads: 2, headDim: 16, blockSize: 32, lengths: [100], workgroupSize: 64, chunkSize: 256 }],
  ['batch of 3, GQA 2', { nHeads: 4, nKvHeads: 2, headDim: 16, blockSize: 8, lengths: [37, 1, 100], workgroupSize: 16, chunkSize: 32 }],
  ['batch of 3 with an empty slot, MHA', { nHeads: 4, nKvHeads: 4, headDim: 8, blockSize: 16, lengths: [7, 0, 64], workgroupSize: 16, chunkSize: 32 }],
];

describe('paged attention', () => {
  it.each(cases)('%s: every variant matches the reference, partials match online softmax', async (_, c) => {
    const nLayers = 3;
    const layer = c.lengths.length % nLayers;
    const { shape, q, pool, blockTable, sequences, layout, expected, outputs, partials, qDim } = await runPaged(c, nLayers, layer, c.headDim * 31 + c.lengths[0]);
    const n = c.lengths.length * qDim;
    for (const variant of pagedAttentionVariants) {
      const out = outputs[variant.name];
      expect(nmse(out.subarray(0, n), expected)).toBeLessThan(tolerance);
      expect(maxAbsDiff(out.subarray(0, n), expected)).toBeLessThan(maxAbsError);
      expectGuardIntact(out, n);
    }
    if (c.lengths.includes(0)) {
      const empty = c.lengths.indexOf(0);
      for (const variant of pagedAttentionVariants) {
        expect(Array.from(outputs[variant.name].subarray(empty * qDim, (empty + 1) * qDim)).every((v) => v === 0)).toBe(true);
      }
    }

    // each live chunk's (m, l, acc) against the token-by-token online softmax over the same tokens
    const stride = c.headDim + 2;
    const maxChunks = pagedAttentionChunks(shape);
    for (const [s, sequence] of sequences.entries()) {
      const keys = new Float32Array(sequence.length * layout.kvDim);
      const values = new Float32Array(sequence.length * layout.kvDim);
      gatherSequence(keys, values, pool, layout, layer, blockTable, sequence);
      for (let h = 0; h < c.nHeads; h++) {
        for (let chunk = 0; chunk * c.chunkSize < sequence.length; chunk++) {
          const start = chunk * c.chunkSize;
          const ref = chunkPartial(q.subarray(s * qDim, (s + 1) * qDim), keys, values, h, start, Math.min(start + c.chunkSize, sequence.length), c);
          const base = ((s * c.nHeads + h) * maxChunks + chunk) * stride;
          expect(nmse(partials.subarray(base, base + stride), [ref.m, ref.l, ...ref.acc])).toBeLessThan(tolerance);
        }
      }
    }
    expectGuardIntact(partials, pagedAttentionPartialsLength(shape));
  });

  it.each(cases.filter(([, c]) => !c.lengths.includes(0)))('%s: equals the contiguous attention kernel on the same K/V', async (_, c) => {
    const nLayers = 2;
    const layer = 1;
    const { kc, pool, blockTable, sequences, layout, q, outputs, qDim } = await runPaged(c, nLayers, layer, 7 * c.headDim + c.lengths.length);
    const maxSeq = 128;
    const layerSize = maxSeq * layout.kvDim;
    for (const [s, sequence] of sequences.entries()) {
      // this sequence's K/V laid out contiguously in layer 1 of (layer, maxSeq, kvDim) caches
      const keyCache = new Float32Array(nLayers * layerSize).fill(Number.NaN);
      const valueCache = new Float32Array(nLayers * layerSize).fill(Number.NaN);
      gatherSequence(keyCache.subarray(layerSize), valueCache.subarray(layerSize), pool, layout, layer, blockTable, sequence);
      const out = upload(kc.device, new Float32Array(qDim));
      const dispatch = await createAttention(
        kc,
        'contiguous',
        {
          step: uploadUniform(kc.device, packParams(stepLayout, { pos: sequence.length - 1, seed: 0, temperature: 0 })),
          q: upload(kc.device, q.subarray(s * qDim, (s + 1) * qDim)),
          keyCache: upload(kc.device, keyCache),
          valueCache: upload(kc.device, valueCache),
          scores: upload(kc.device, new Float32Array(c.nHeads * maxSeq)),
          out,
        },
        { nHeads: c.nHeads, nKvHeads: c.nKvHeads, headDim: c.headDim, maxSeq, cacheOffset: layerSize },
      );
      await run(kc.device, dispatch);
      const contiguous = await downloadF32(kc.device, out);
      for (const variant of pagedAttentionVariants) {
        const paged = outputs[variant.name].subarray(s * qDim, (s + 1) * qDim);
        expect(nmse(paged, contiguous)).toBeLessThan(tolerance);
        expect(maxAbsDiff(paged, contiguous)).toBeLessThan(maxAbsError);
      }
    }
  });
});

// The unfused baseline on batches of different odd lengths: its output against the f64 reference
// and the fused kernel (same NMSE and |error| bounds as above), and its softmax rows, read back
// from the scores buffer, against the reference's probabilities to 1e-6 absolute (f32 scores and
// exp carry a few ulps of a probability at most 1). Rows are maxLength = 101 apart, so no row
// starts on a tile boundary; slots of a row past its sequence's end must keep their sentinel.
const probabilityError = 1e-6;
const unfusedMaxLength = 101;
const unfusedCases: [string, Case][] = [
  ['MHA, block 8', { nHeads: 4, nKvHeads: 4, headDim: 8, blockSize: 8, lengths: [1, 7, 33, 100], workgroupSize: 16, chunkSize: 32 }],
  ['GQA 2, block 16', { nHeads: 4, nKvHeads: 2, headDim: 16, blockSize: 16, lengths: [100, 33, 7, 1], workgroupSize: 16, chunkSize: 32 }],
  ['GQA 4, block 32', { nHeads: 8, nKvHeads: 2, headDim: 8, blockSize: 32, lengths: [33, 100, 1, 7], workgroupSize: 16, chunkSize: 32 }],
  // 8 threads: two q elements per thread in the scores pass, 13 scores per thread in the softmax
  ['GQA 4, head wider than the workgroup', { nHeads: 4, nKvHeads: 1, headDim: 16, blockSize: 16, lengths: [7, 100], workgroupSize: 8, chunkSize: 24 }],
  ['GQA 2, default tiling', { nHeads: 4, nKvHeads: 2, headDim: 16, blockSize: 32, lengths: [100, 33], workgroupSize: 64, chunkSize: 256 }],
];

describe('unfused paged attention', () => {
  it.each(unfusedCases)('%s: matches the reference and the fused kernel, its rows hold the softmax', async (_, c) => {
    const nLayers = 2;
    const layer = 1;
    const run = await runPaged(c, nLayers, layer, 97 + c.nHeads * c.headDim, unfusedMaxLength);
    const { shape, q, pool, blockTable, sequences, layout, expected, outputs, scores, qDim } = run;
    const n = c.lengths.length * qDim;
    const unfused = outputs.unfused.subarray(0, n);
    expect(nmse(unfused, expected)).toBeLessThan(tolerance);
    expect(maxAbsDiff(unfused, expected)).toBeLessThan(maxAbsError);
    expect(maxAbsDiff(unfused, outputs.whole.subarray(0, n))).toBeLessThan(maxAbsError);
    expectGuardIntact(outputs.unfused, n);

    for (const [s, sequence] of sequences.entries()) {
      const keys = new Float32Array(sequence.length * layout.kvDim);
      gatherSequence(keys, new Float32Array(keys.length), pool, layout, layer, blockTable, sequence);
      for (let h = 0; h < c.nHeads; h++) {
        const start = (s * c.nHeads + h) * unfusedMaxLength;
        const row = scores.subarray(start, start + unfusedMaxLength);
        const probabilities = attentionProbabilities(q.subarray(s * qDim, (s + 1) * qDim), keys, sequence.length, h, c);
        expect(maxAbsDiff(row.subarray(0, sequence.length), probabilities)).toBeLessThan(probabilityError);
        expect(Array.from(row.subarray(sequence.length)).every((v) => v === sentinel)).toBe(true);
      }
    }
    expectGuardIntact(scores, pagedAttentionScoresLength(shape));
  });

  it('needs a scores buffer', async () => {
    const kc = await testKernels();
    const buffer = upload(kc.device, new Float32Array(64));
    const shape: PagedAttentionShape = { nHeads: 4, nKvHeads: 2, headDim: 8, nLayers: 1, layer: 0, blockSize: 8, batch: 1, maxLength: 16, workgroupSize: 16, chunkSize: 32 };
    const buffers = { q: buffer, kvPool: buffer, blockTable: buffer, seqInfo: buffer, out: buffer };
    const refused = createPagedAttention(kc, 'unfused', buffers, shape, 'unfused');
    await expect(refused).rejects.toThrow(RequestError);
    await expect(refused).rejects.toThrow('paged-attention variant "unfused" needs a scores buffer (pagedAttentionScoresLength(shape) f32)');
    expect(pagedAttentionScoresLength(shape)).toBe(4 * 16);
  });
});

describe('paged attention reference', () => {
  it.each([1, 5, 16, 40, 41])('chunks of %i tokens give the same attention as one softmax', (chunkSize) => {
    const shape = { nHeads: 4, nKvHeads: 2, headDim: 8 };
    const length = 41;
    const rand = seededRandom(chunkSize);
    const q = rand(shape.nHeads * shape.headDim, 3);
    const keys = rand(length * shape.nKvHeads * shape.headDim, 3);
    const values = rand(length * shape.nKvHeads * shape.headDim);
    const direct = new Float32Array(shape.nHeads * shape.headDim);
    const chunked = new Float32Array(shape.nHeads * shape.headDim);
    attendSequence(direct, q, keys, values, length, shape);
    chunkedAttention(chunked, q, keys, values, length, chunkSize, shape);
    expect(nmse(chunked, direct)).toBeLessThan(1e-13);
    expect(maxAbsDiff(chunked, direct)).toBeLessThan(1e-6);
    expect(maxAbsDiff(direct, new Float32Array(direct.length))).toBeGreaterThan(0.01); // not trivially zero
  });
});

describe('paged attention variants', () => {
  const shape: PagedAttentionShape = { nHeads: 8, nKvHeads: 2, headDim: 64, nLayers: 4, layer: 0, blockSize: 16, batch: 2, maxLength: 1024, workgroupSize: 64, chunkSize: 256 };
  const [whole, splitK, unfused] = pagedAttentionVariants;

  it('cost: K and V rows per query head, one block-table entry per token, 4·L·headDim flops per head', () => {
    const lengths = [300, 1];
    const kvRowBytes = 4 * 64; // one KV head's slice of a row
    const attended = 8 * 301 * (2 * kvRowBytes + 4);
    expect(whole.cost(shape, lengths)).toEqual([{ bytesRead: attended + 16 * (4 * 64 + 8), bytesWritten: 16 * 4 * 64, flops: 4 * 8 * 64 * 301 }]);
    const [chunks, reduce] = splitK.cost(shape, lengths);
    // 2 + 1 live chunks per head; a grid of 4 chunk slots per (head, sequence)
    expect(chunks).toEqual({ bytesRead: attended + 8 * 4 * 2 * 8 + 8 * 3 * 4 * 64, bytesWritten: 8 * 3 * 4 * 66, flops: 4 * 8 * 64 * 301 });
    expect(reduce).toEqual({ bytesRead: 8 * 3 * 4 * 66 + 16 * 8, bytesWritten: 16 * 4 * 64, flops: 8 * 3 * 2 * 65 + 16 * 64 });
  });

  it('cost: unfused counts every trip of the scores through memory', () => {
    expect(unfused.name).toBe('unfused');
    const lengths = [300, 1];
    const scores = 8 * 301; // (head, token) pairs
    const kvRowBytes = 4 * 64;
    const [qk, softmax, weightedSum] = unfused.cost(shape, lengths);
    // a grid of 16 tiles of 64 tokens per (head, sequence); 5 + 1 tiles per head hold tokens and read q
    expect(qk).toEqual({ bytesRead: scores * (kvRowBytes + 4) + 8 * 16 * 2 * 8 + 8 * 6 * kvRowBytes, bytesWritten: 4 * scores, flops: scores * (2 * 64 + 1) });
    expect(softmax).toEqual({ bytesRead: 3 * 4 * scores + 16 * 8, bytesWritten: 2 * 4 * scores, flops: 5 * scores });
    expect(weightedSum).toEqual({ bytesRead: scores * (4 + 4 + kvRowBytes) + 16 * 8, bytesWritten: 16 * 4 * 64, flops: 2 * 64 * scores });
    // the fused kernel's 4·headDim flops per score, plus the scale and the softmax's 5
    const flops = [qk, softmax, weightedSum].reduce((sum, c) => sum + c.flops, 0);
    expect(flops - whole.cost(shape, lengths)[0].flops).toBe(6 * scores);
  });

  it('requirements name what a small adapter lacks', () => {
    const adapter: Pick<AdapterReport, 'limits'> = {
      limits: {
        maxBufferSize: 1 << 28,
        maxStorageBufferBindingSize: 1 << 27,
        maxComputeWorkgroupStorageSize: 1024,
        maxComputeInvocationsPerWorkgroup: 32,
        maxComputeWorkgroupSizeX: 32,
        maxComputeWorkgroupsPerDimension: 65535,
        maxStorageBuffersPerShaderStage: 8,
      },
    };
    expect(whole.requires(shape)).toEqual({ features: [], invocations: 64, workgroupStorageBytes: 4 * (2 * 64 + 3 * 64) });
    expect(missingPagedAttentionRequirements(adapter, splitK, shape)).toEqual(['64 threads per workgroup (limit 32)', '1280 bytes of workgroup storage (limit 1024)']);
    expect(missingPagedAttentionRequirements(adapter, whole, { ...shape, headDim: 16, workgroupSize: 32 })).toEqual([]);
    // unfused: q in the scores pass or one partial per thread in the softmax, whichever is larger
    expect(unfused.requires(shape)).toEqual({ features: [], invocations: 64, workgroupStorageBytes: 4 * 64 });
    expect(unfused.requires({ ...shape, headDim: 128 })).toEqual({ features: [], invocations: 64, workgroupStorageBytes: 4 * 128 });
    expect(missingPagedAttentionRequirements(adapter, unfused, { ...shape, workgroupSize: 32 })).toEqual([]);
  });
});
