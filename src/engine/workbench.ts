// The kernel workbench. runWorkbench times every variant of an op (a matvec, or decode attention
// over paged and contiguous KV caches) at a shape the user picks, checks each against the CPU
// reference and sets it against the roofline probe. checkShaderEdit is the gate
// edited WGSL passes before the model compiles it: the edit must compile with every set of
// preprocessor flags the model uses on this adapter, and every format x variant it serves must
// match the reference on shapes with ragged tails.
import { RequestError, ShaderCompileError } from './errors.ts';
import { withErrorScope, type GpuContext } from './gpu/device.ts';
import { encodeDispatches, KernelContext, type Cost, type Dispatch } from './gpu/kernel.ts';
import { createParamsBuffer, stepLayout } from './gpu/params.ts';
import { compileShader, shaderSources, type ShaderFamily } from './gpu/shaders.ts';
import { timeDispatches, type TimingMethod } from './gpu/timing.ts';
import { preprocessWgsl, type WgslDefines } from './gpu/wgsl.ts';
import type { AdapterReport } from './engine.ts';
import { attentionCost, createAttention, type AttentionShape } from './kernels/attention.ts';
import { defaultProbeBytes } from './kernels/bandwidth.ts';
import { matvecDefines } from './kernels/matvec.ts';
import { createFormatMatvec, formatMatvecCost, matvecVariants, missingRequirements, supportedFormats, supportedVariants, uploadMatrix } from './kernels/matvec-variants.ts';
import {
  createPagedAttention,
  defaultPagedAttentionTiling,
  missingPagedAttentionRequirements,
  packSeqInfo,
  pagedAttentionPartialsLength,
  pagedAttentionScoresLength,
  pagedAttentionVariants,
  pagedAttentionWholeCost,
  type PagedAttentionBuffers,
  type PagedAttentionShape,
  type SequenceSlot,
} from './kernels/paged-attention.ts';
import { checkBlockSize, pageElementOffset } from './kv/page-pool.ts';
import { packedByteLength, packMatrix, unpackMatrix, weightFormats, type PackedMatrix, type WeightFormat } from './quant/formats.ts';
import { matvec } from './reference/ops.ts';
import { pagedAttention } from './reference/paged-attention.ts';
import { readBufferF32 } from './gpu/readback.ts';
import { seededValues, uniform } from './reference/rng.ts';
import type { AttentionWorkbenchRequest, MatvecWorkbenchRequest, ShaderEditReport, WorkbenchReport, WorkbenchRequest, WorkbenchVariantResult } from './telemetry.ts';

// ---------------------------------------------------------------------------------------------
// A matvec on the GPU against the CPU reference

/** Floats after x and after out: NaN after x shows a kernel reading past `cols`, the sentinel after out one writing past `rows`. */
const guard = 16;
const sentinel = 12345.5;

/** One matrix (in one or more copies) and x on the GPU, with the product the CPU computed. */
interface MatvecProblem {
  packed: PackedMatrix;
  /** (rows) the product with the dequantized weights, accumulated in f64. */
  reference: Float32Array;
  /** Identical copies of the packed matrix (see workingSetCopies). */
  weights: GPUBuffer[];
  /** (cols + guard) x, then NaNs. */
  x: GPUBuffer;
  /** (rows + guard) the product, then sentinels. */
  out: GPUBuffer;
}


function uploadProblem(device: GPUDevice, packed: PackedMatrix, x: Float32Array, copies: number): MatvecProblem {
  const { rows, cols, format } = packed;
  const reference = new Float32Array(rows);
  matvec(reference, unpackMatrix(packed), x, rows, cols);
  const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST;
  const xBuffer = device.createBuffer({ label: 'workbench.x', size: 4 * (cols + guard), usage });
  const xWithGuard = new Float32Array(cols + guard).fill(NaN);
  xWithGuard.set(x);
  device.queue.writeBuffer(xBuffer, 0, xWithGuard);
  const out = device.createBuffer({ label: 'workbench.out', size: 4 * (rows + guard), usage: usage | GPUBufferUsage.COPY_SRC });
  const weights = Array.from({ length: copies }, (_, i) => uploadMatrix(device, packed, `workbench.${format}.${rows}x${cols}.${i}`));
  return { packed, reference, weights, x: xBuffer, out };
}

function destroyProblem(p: MatvecProblem): void {
  for (const buffer of [...p.weights, p.x, p.out]) buffer.destroy();
}

/** One dispatch per weight copy, all writing the same output. */
function matvecDispatches(kc: KernelContext, p: MatvecProblem, variant: string): Promise<Dispatch[]> {
  const { format, rows, cols } = p.packed;
  const label = `workbench.${format}.${variant}.${rows}x${cols}`;
  return Promise.all(p.weights.map((weight) => createFormatMatvec(kc, label, { weight, x: p.x, out: p.out }, p.packed, variant)));
}

/** Fills an output of n floats and its guard with sentinels, so a variant that writes nothing cannot pass on the previous one's result. */
function fillSentinels(device: GPUDevice, out: GPUBuffer, n: number): void {
  device.queue.writeBuffer(out, 0, new Float32Array(n + guard).fill(sentinel));
}

function resetOutput(device: GPUDevice, p: MatvecProblem): void {
  fillSentinels(device, p.out, p.packed.rows);
}


/**
 * The largest NMSE against the reference that still counts as a match. The kernel tests' bound,
 * 1e-10, holds for short rows; the f32 rounding of a sum of n random-signed terms grows to an NMSE
 * of about n * 2^-49, so long rows are allowed 100 times that.
 */
export function matvecTolerance(cols: number): number {
  return Math.max(1e-10, 100 * cols * 2 ** -48);
}

interface Comparison {
  /** Largest |GPU - CPU| over the rows (NaN sticks). */
  maxAbsError: number;
  /** What is wrong, if anything. */
  problem?: string;
}

/** output (reference.length values, then the guard) against the reference; `unit` names one value in the message. */
function compare(output: Float32Array, reference: Float32Array, tolerance: number, unit: string): Comparison {
  const rows = reference.length;
  let maxAbsError = 0;
  let squaredError = 0;
  let squaredReference = 0;
  for (let r = 0; r < rows; r++) {
    const error = output[r] - reference[r];
    maxAbsError = Math.max(maxAbsError, Math.abs(error));
    squaredError += error * error;
    squaredReference += reference[r] * reference[r];
  }
  const overwritten = output.subarray(rows).findIndex((v) => v !== sentinel);
  if (overwritten >= 0) return { maxAbsError, problem: `wrote past the last ${unit} (out[${rows + overwritten}] of ${rows})` };
  const nmse = squaredError / squaredReference;
  if (!(nmse <= tolerance)) {
    return { maxAbsError, problem: `differs from the CPU reference: max |error| ${maxAbsError.toExponential(2)}, NMSE ${nmse.toExponential(2)} (tolerance ${tolerance.toExponential(1)})` };
  }
  return { maxAbsError };
}

function compareMatvec(output: Float32Array, p: MatvecProblem): Comparison {
  return compare(output, p.reference, matvecTolerance(p.packed.cols), 'row');
}

function messageOf(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).trimEnd();
}

/** A lost device is no fault of the variant or the edit: it ends the whole run. */
async function rethrowIfLost(gpu: GpuContext): Promise<void> {
  if (gpu.isLost()) throw await gpu.lost;
}

// ---------------------------------------------------------------------------------------------
// The workbench: every variant of the op at one shape

const defaultRepetitions = 10;
// Timestamp timing holds at most 2048 passes; a thousand samples is far more than a mean needs.
const maxRepetitions = 1000;
// The CPU generates, packs and multiplies every weight: 2^27 (Llama-7B's 32000 x 4096 classifier
// fits) keeps that to seconds and the f32 values to 512 MiB.
const maxWeights = 2 ** 27;
// Enough copies to stream the probe's bytes without thousands of bind groups (as the bench does).
const maxCopies = 64;

export async function runWorkbench(kc: KernelContext, probeGBps: number, request: WorkbenchRequest): Promise<WorkbenchReport> {
  const op: string = request.op; // requests cross the worker boundary unchecked
  switch (request.op) {
    case 'matvec':
      return runMatvecWorkbench(kc, probeGBps, request);
    case 'attention':
      return runAttentionWorkbench(kc, probeGBps, request);
  }
  throw new RequestError(`the workbench runs the matvec and attention ops, not "${op}"`);
}

function timingMethod(adapter: AdapterReport): TimingMethod {
  return adapter.features.timestampQuery ? 'timestamp' : 'wall';
}

function notRun(variant: string, error: string, edited: boolean): WorkbenchVariantResult {
  return { variant, ms: null, gbps: null, gflops: null, fractionOfProbe: null, maxAbsError: null, error, edited };
}

/** A variant that ran `ms` per run for `cost`, set against the probe. */
function measured(variant: string, ms: number, cost: Cost, probeGBps: number, comparison: Comparison, edited: boolean): WorkbenchVariantResult {
  const gbps = (cost.bytesRead + cost.bytesWritten) / (ms * 1e6);
  const { maxAbsError, problem } = comparison;
  return { variant, ms, gbps, gflops: cost.flops / ms / 1e6, fractionOfProbe: gbps / probeGBps, maxAbsError, ...(problem && { error: problem }), edited };
}

async function runMatvecWorkbench(kc: KernelContext, probeGBps: number, request: MatvecWorkbenchRequest): Promise<WorkbenchReport> {
  const { adapter } = kc.gpu;
  const { format, full } = checkMatvecRequest(adapter, request);
  const { rows, cols, repetitions } = full;
  const cost = formatMatvecCost(format, rows, cols);
  const method = timingMethod(adapter);
  const edited = kc.sources.matvec !== shaderSources.matvec;

  const results: WorkbenchVariantResult[] = [];
  let problem: MatvecProblem | undefined; // uploaded for the first variant that runs
  try {
    for (const v of matvecVariants) {
      const missing = missingRequirements(adapter, v, format);
      if (missing.length > 0) {
        results.push(notRun(v.name, `needs ${missing.join(' and ')}`, edited));
        continue;
      }
      if (!problem) {
        const packed = packMatrix(seededValues(rows * cols, 2), rows, cols, format);
        problem = uploadProblem(kc.device, packed, seededValues(cols, 1), workingSetCopies(adapter, packed));
      }
      try {
        const dispatches = await matvecDispatches(kc, problem, v.name);
        resetOutput(kc.device, problem);
        // Pipelines are compiled by now; one untimed run pages the weights in.
        const timing = await timeDispatches(kc.gpu, dispatches, { repetitions, warmup: 1, method });
        const comparison = compareMatvec(await readBufferF32(kc.device, problem.out), problem);
        results.push(measured(v.name, timing.meanMs / dispatches.length, cost, probeGBps, comparison, edited));
      } catch (error) {
        await rethrowIfLost(kc.gpu);
        results.push(notRun(v.name, messageOf(error), edited));
      }
    }
  } finally {
    if (problem) destroyProblem(problem);
  }
  return { request: full, ...cost, probeGBps, method, results };
}

/**
 * Copies of the matrix one timed run multiplies by in turn, so it streams as many bytes as the
 * roofline probe did: one small matrix would be served from a cache, which in a real decode step
 * everything else read in between evicts.
 */
function workingSetCopies(adapter: AdapterReport, packed: PackedMatrix): number {
  return Math.min(maxCopies, Math.max(1, Math.ceil(defaultProbeBytes(adapter) / packed.byteLength)));
}

/** The request's repetitions, or the default, after checking them. */
function checkRepetitions(repetitions = defaultRepetitions): number {
  if (!Number.isInteger(repetitions) || repetitions < 1 || repetitions > maxRepetitions) {
    throw new RequestError(`repetitions must be a whole number from 1 to ${maxRepetitions}, got ${repetitions}`);
  }
  return repetitions;
}

/** Throws a RequestError naming the first of `values` that is not a positive whole number. */
function checkPositiveWhole(values: readonly (readonly [name: string, value: number])[]): void {
  for (const [name, value] of values) {
    if (!Number.isInteger(value) || value < 1) throw new RequestError(`${name} must be a positive whole number, got ${value}`);
  }
}

/** Throws a RequestError naming the first buffer larger than the adapter binds. */
function checkBufferSizes(adapter: AdapterReport, buffers: readonly (readonly [what: string, bytes: number])[]): void {
  const limit = Math.min(adapter.limits.maxStorageBufferBindingSize, adapter.limits.maxBufferSize);
  for (const [what, bytes] of buffers) {
    if (bytes > limit) throw new RequestError(`${what} takes ${bytes} bytes; this adapter binds at most ${limit} bytes in one buffer`);
  }
}

/** The request with its defaults, after checking it; a RequestError says what is wrong. */
function checkMatvecRequest(adapter: AdapterReport, request: MatvecWorkbenchRequest): { format: WeightFormat; full: Required<MatvecWorkbenchRequest> } {
  const format = weightFormats.find((f) => f === request.format);
  if (!format) throw new RequestError(`unknown weight format "${request.format}" (known: ${weightFormats.join(', ')})`);
  const { rows, cols } = request;
  checkPositiveWhole([['rows', rows], ['cols', cols]]);
  const repetitions = checkRepetitions(request.repetitions);
  if (rows * cols > maxWeights) throw new RequestError(`a ${rows} x ${cols} matrix has ${rows * cols} weights; the workbench takes at most ${maxWeights}`);
  checkBufferSizes(adapter, [
    [`the ${rows} x ${cols} ${format} matrix`, packedByteLength(format, rows, cols)],
    [`x (${cols} floats)`, 4 * (cols + guard)],
    [`out (${rows} floats)`, 4 * (rows + guard)],
  ]);
  return { format, full: { op: 'matvec', format, rows, cols, repetitions } };
}

// ---------------------------------------------------------------------------------------------
// Decode attention: every paged variant and the contiguous kernel on the same K/V
//
// One layer of K/V for `batch` sequences of `length` tokens sits twice on the GPU: in a one-layer
// page pool, each sequence's pages shuffled through it and NaN in every slot no sequence owns (a
// stray read poisons the output), and in contiguous (batch, length, kvDim) caches. The contiguous
// kernel attends one sequence per dispatch, so it runs once per sequence, all `batch` dispatches in
// one timed pass: every variant's time is the whole batch's attention. The pool is read once per
// timed run; one smaller than the GPU's last-level cache is served from it after the warm-up.

/** The contiguous kernel's name among the results, after the paged variants'. */
const contiguousVariant = 'contiguous';

// The CPU fills K and V and runs the reference's q·k and p·v over every (sequence, head, token,
// dim): 2^26 of them (8192 tokens of 32 heads of 128) keeps that to seconds and K, V to 256 MiB each.
const maxAttentionProducts = 2 ** 26;

/**
 * The largest NMSE against the f64 reference that still counts as a match: the paged kernel tests'
 * 1e-9 for short contexts, growing with the f32 sums over `length` tokens and `headDim` dims as
 * matvecTolerance grows with a row.
 */
export function attentionTolerance(length: number, headDim: number): number {
  return Math.max(1e-9, 100 * (length + headDim) * 2 ** -48);
}

/** The paged kernels' shape for a request: one layer, the paged model's tiling, room for exactly `length` tokens. */
function pagedShape(r: AttentionWorkbenchRequest): PagedAttentionShape {
  const { batch, length, nHeads, nKvHeads, headDim, blockSize } = r;
  return { nHeads, nKvHeads, headDim, nLayers: 1, layer: 0, blockSize, batch, maxLength: length, ...defaultPagedAttentionTiling };
}

/** The contiguous kernel's shape for sequence `s`, whose rows start s * length rows into the caches. */
function contiguousShape(r: AttentionWorkbenchRequest, s: number): AttentionShape {
  return { nHeads: r.nHeads, nKvHeads: r.nKvHeads, headDim: r.headDim, maxSeq: r.length, cacheOffset: s * r.length * r.nKvHeads * r.headDim };
}

/** Pages a sequence of the request owns; the pool holds one more that nobody owns. */
function pagesPerSequence(r: AttentionWorkbenchRequest): number {
  return Math.ceil(r.length / r.blockSize);
}

interface AttentionProblem {
  request: Required<AttentionWorkbenchRequest>;
  shape: PagedAttentionShape;
  /** (batch) every sequence's length: the request's. */
  lengths: number[];
  /** (batch, nHeads, headDim) the reference's output, softmax in f64. */
  reference: Float32Array;
  /** out: (batch * nHeads * headDim + guard), then sentinels. */
  paged: Required<PagedAttentionBuffers>;
  step: GPUBuffer; // the Step uniform: pos = length - 1
  keyCache: GPUBuffer; // (batch, length, kvDim)
  valueCache: GPUBuffer; // (batch, length, kvDim)
  contiguousScores: GPUBuffer; // (nHeads, length), reused by each sequence's dispatch in turn
  /** Per sequence: (nHeads * headDim) its query. */
  queries: GPUBuffer[];
  /** Per sequence: (nHeads * headDim + guard) its output, then sentinels. */
  outs: GPUBuffer[];
}

/** 0 .. n-1 in a seeded random order (Fisher-Yates), so no sequence's pages are contiguous or in order. */
function shuffledPages(n: number): Uint32Array {
  const pages = Uint32Array.from({ length: n }, (_, p) => p);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(uniform(7, i) * (i + 1));
    [pages[i], pages[j]] = [pages[j], pages[i]];
  }
  return pages;
}

function uploadStorage(device: GPUDevice, label: string, data: Float32Array | Uint32Array): GPUBuffer {
  const buffer = device.createBuffer({ label, size: data.byteLength, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC });
  device.queue.writeBuffer(buffer, 0, data);
  return buffer;
}

function uploadAttentionProblem(device: GPUDevice, request: Required<AttentionWorkbenchRequest>): AttentionProblem {
  const { batch, length, nHeads, nKvHeads, headDim, blockSize } = request;
  const shape = pagedShape(request);
  const kvDim = nKvHeads * headDim;
  const qDim = nHeads * headDim;
  const layout = { nLayers: 1, blockSize, kvDim };

  // K and V as contiguous rows (batch, length, kvDim), then scattered into the shuffled pages
  const keys = seededValues(batch * length * kvDim, 3);
  const values = seededValues(batch * length * kvDim, 4);
  const owned = pagesPerSequence(request);
  const pages = shuffledPages(batch * owned + 1);
  const blockTable = pages.slice(0, batch * owned); // sequence s owns blockTable[s * owned ..]
  const sequences: SequenceSlot[] = Array.from({ length: batch }, (_, s) => ({ blockTableOffset: s * owned, length }));
  const pool = new Float32Array(pages.length * 2 * blockSize * kvDim).fill(NaN); // (page, layer 0, kv, slot, kvDim)
  for (let s = 0; s < batch; s++) {
    for (let t = 0; t < length; t++) {
      const page = blockTable[s * owned + Math.floor(t / blockSize)];
      const row = (s * length + t) * kvDim;
      pool.set(keys.subarray(row, row + kvDim), pageElementOffset(layout, page, 0, 0, t % blockSize, 0));
      pool.set(values.subarray(row, row + kvDim), pageElementOffset(layout, page, 0, 1, t % blockSize, 0));
    }
  }
  const q = seededValues(batch * qDim, 5);
  const reference = new Float32Array(batch * qDim);
  pagedAttention(reference, q, pool, blockTable, sequences, request, { nLayers: 1, blockSize, layer: 0 });

  const label = 'workbench.attention';
  const floats = (name: string, n: number) => uploadStorage(device, `${label}.${name}`, new Float32Array(n));
  return {
    request,
    shape,
    lengths: sequences.map((s) => s.length),
    reference,
    paged: {
      q: uploadStorage(device, `${label}.q`, q),
      kvPool: uploadStorage(device, `${label}.kvPool`, pool),
      blockTable: uploadStorage(device, `${label}.blockTable`, blockTable),
      seqInfo: uploadStorage(device, `${label}.seqInfo`, packSeqInfo(sequences)),
      out: floats('out', batch * qDim + guard),
      partials: floats('partials', pagedAttentionPartialsLength(shape)),
      scores: floats('scores', pagedAttentionScoresLength(shape)),
    },
    step: createParamsBuffer(device, `${label}.step`, stepLayout, { pos: length - 1, seed: 0, temperature: 0 }),
    keyCache: uploadStorage(device, `${label}.keyCache`, keys),
    valueCache: uploadStorage(device, `${label}.valueCache`, values),
    contiguousScores: floats('contiguousScores', nHeads * length),
    queries: Array.from({ length: batch }, (_, s) => uploadStorage(device, `${label}.q.${s}`, q.subarray(s * qDim, (s + 1) * qDim))),
    outs: Array.from({ length: batch }, (_, s) => floats(`out.${s}`, qDim + guard)),
  };
}

function destroyAttentionProblem(p: AttentionProblem): void {
  for (const buffer of [...Object.values(p.paged), p.step, p.keyCache, p.valueCache, p.contiguousScores, ...p.queries, ...p.outs]) buffer.destroy();
}

/** One thing the attention workbench times: its dispatches, its declared cost and where its output lands. */
interface AttentionCandidate {
  variant: string;
  edited: boolean;
  /** What the adapter lacks to run it, in words. */
  missing: string[];
  /** The cost of one run of all its dispatches. */
  cost: Cost;
  build(): Promise<Dispatch[]>;
  /** Output buffers (values, then a guard) with the reference each must match. */
  outputs: [GPUBuffer, Float32Array][];
}

function sumCosts(costs: readonly Cost[]): Cost {
  return costs.reduce((t, c) => ({ bytesRead: t.bytesRead + c.bytesRead, bytesWritten: t.bytesWritten + c.bytesWritten, flops: t.flops + c.flops }), { bytesRead: 0, bytesWritten: 0, flops: 0 });
}

function attentionCandidates(kc: KernelContext, p: AttentionProblem): AttentionCandidate[] {
  const { adapter } = kc.gpu;
  const { request, shape, lengths, reference } = p;
  const qDim = request.nHeads * request.headDim;
  const paged = pagedAttentionVariants.map(
    (v): AttentionCandidate => ({
      variant: v.name,
      edited: kc.sources['paged-attention'] !== shaderSources['paged-attention'],
      missing: missingPagedAttentionRequirements(adapter, v, shape),
      cost: sumCosts(v.cost(shape, lengths)),
      build: () => createPagedAttention(kc, `workbench.attention.${v.name}`, p.paged, shape, v.name),
      outputs: [[p.paged.out, reference]],
    }),
  );
  const contiguous: AttentionCandidate = {
    variant: contiguousVariant,
    edited: kc.sources.attention !== shaderSources.attention,
    missing: [],
    cost: sumCosts(lengths.map((length, s) => attentionCost(contiguousShape(request, s), length))),
    build: () =>
      Promise.all(
        p.queries.map((q, s) =>
          createAttention(
            kc,
            `workbench.attention.${contiguousVariant}.${s}`,
            { step: p.step, q, keyCache: p.keyCache, valueCache: p.valueCache, scores: p.contiguousScores, out: p.outs[s] },
            contiguousShape(request, s),
          ),
        ),
      ),
    outputs: p.outs.map((out, s) => [out, reference.subarray(s * qDim, (s + 1) * qDim)]),
  };
  return [...paged, contiguous];
}

/** Every output against its reference: the largest error, and the first problem (naming the sequence when there are several outputs). */
async function compareAttention(device: GPUDevice, c: AttentionCandidate, tolerance: number): Promise<Comparison> {
  let maxAbsError = 0;
  let problem: string | undefined;
  for (const [s, [out, reference]] of c.outputs.entries()) {
    const comparison = compare(await readBufferF32(device, out), reference, tolerance, 'output');
    maxAbsError = Math.max(maxAbsError, comparison.maxAbsError); // NaN sticks
    if (comparison.problem && !problem) problem = c.outputs.length > 1 ? `sequence ${s}: ${comparison.problem}` : comparison.problem;
  }
  return { maxAbsError, ...(problem && { problem }) };
}

/**
 * Times whole, splitK, unfused and the contiguous kernel on the same K/V. The report's bytes and
 * flops are the fused `whole` kernel's (the op as the paged model runs it by default); each
 * variant's GB/s and GFLOP/s come from its own declared cost, so the unfused variant's include its
 * scores' round trips through memory and the contiguous kernel's read each KV head once.
 */
async function runAttentionWorkbench(kc: KernelContext, probeGBps: number, request: AttentionWorkbenchRequest): Promise<WorkbenchReport> {
  const { adapter } = kc.gpu;
  const full = checkAttentionRequest(adapter, request);
  const method = timingMethod(adapter);
  const tolerance = attentionTolerance(full.length, full.headDim);
  const problem = uploadAttentionProblem(kc.device, full);
  try {
    const results: WorkbenchVariantResult[] = [];
    for (const c of attentionCandidates(kc, problem)) {
      if (c.missing.length > 0) {
        results.push(notRun(c.variant, `needs ${c.missing.join(' and ')}`, c.edited));
        continue;
      }
      try {
        const dispatches = await c.build();
        for (const [out, reference] of c.outputs) fillSentinels(kc.device, out, reference.length);
        // Pipelines are compiled by now; one untimed run pages the pool in.
        const timing = await timeDispatches(kc.gpu, dispatches, { repetitions: full.repetitions, warmup: 1, method });
        results.push(measured(c.variant, timing.meanMs, c.cost, probeGBps, await compareAttention(kc.device, c, tolerance), c.edited));
      } catch (error) {
        await rethrowIfLost(kc.gpu);
        results.push(notRun(c.variant, messageOf(error), c.edited));
      }
    }
    return { request: full, ...pagedAttentionWholeCost(problem.shape, problem.lengths), probeGBps, method, results };
  } finally {
    destroyAttentionProblem(problem);
  }
}

/** The request with its defaults, after checking it; a RequestError says what is wrong. */
function checkAttentionRequest(adapter: AdapterReport, request: AttentionWorkbenchRequest): Required<AttentionWorkbenchRequest> {
  const { batch, length, nHeads, nKvHeads, headDim, blockSize } = request;
  checkPositiveWhole([
    ['batch', batch],
    ['length', length],
    ['nHeads', nHeads],
    ['nKvHeads', nKvHeads],
    ['headDim', headDim],
    ['blockSize', blockSize],
  ]);
  if (nHeads % nKvHeads !== 0) throw new RequestError(`nHeads ${nHeads} is not a multiple of nKvHeads ${nKvHeads}`);
  checkBlockSize(blockSize);
  const repetitions = checkRepetitions(request.repetitions);
  const products = batch * length * nHeads * headDim;
  if (products > maxAttentionProducts) {
    throw new RequestError(`${batch} sequences x ${length} tokens x ${nHeads} heads x ${headDim} dims is ${products} products; the workbench takes at most ${maxAttentionProducts}`);
  }
  const full = { op: 'attention', batch, length, nHeads, nKvHeads, headDim, blockSize, repetitions } as const;
  const shape = pagedShape(full);
  const limit = adapter.limits.maxComputeWorkgroupsPerDimension;
  for (const [what, workgroups] of [
    ['nHeads', nHeads],
    ['batch', batch],
    [`${length} tokens in tiles of ${shape.workgroupSize}`, Math.ceil(length / shape.workgroupSize)],
  ] as const) {
    if (workgroups > limit) throw new RequestError(`${what} needs ${workgroups} workgroups along one grid dimension; this adapter launches at most ${limit}`);
  }
  const kvDim = nKvHeads * headDim;
  checkBufferSizes(adapter, [
    [`the page pool (${batch * pagesPerSequence(full) + 1} pages of ${blockSize} tokens)`, 4 * (batch * pagesPerSequence(full) + 1) * 2 * blockSize * kvDim],
    [`the contiguous K cache (${batch} x ${length} x ${kvDim} floats)`, 4 * batch * length * kvDim],
    [`the unfused scores (${batch} x ${nHeads} x ${length} floats)`, 4 * pagedAttentionScoresLength(shape)],
    [`the split-K partials (${pagedAttentionPartialsLength(shape)} floats)`, 4 * pagedAttentionPartialsLength(shape)],
    [`out (${batch} x ${nHeads} x ${headDim} floats)`, 4 * (batch * nHeads * headDim + guard)],
  ]);
  return full;
}

// ---------------------------------------------------------------------------------------------
// Edited WGSL: compile it for every configuration, then check every kernel against the reference

type Check = ShaderEditReport['checks'][number];

/** What checking an edit of one family takes. */
interface FamilyChecks {
  /** The preprocessor flag sets the model compiles the family with on this adapter, by a label naming them. */
  configurations(adapter: AdapterReport): Map<string, WgslDefines>;
  /** Runs every kernel of the family (compiled by `kc`) against the CPU reference. */
  check(kc: KernelContext): Promise<Check[]>;
}

// Rows that are not a whole number of multiRow's 4-row or naive's 64-thread tiles; 172 columns end
// in a part of a quantized block and are whole vec4s (the f32 vec4 path), 95 end in half of an f16
// pair and are not (the scalar f32 path).
const matvecCheckShapes = [
  { rows: 37, cols: 172 },
  { rows: 70, cols: 95 },
] as const;

const matvecChecks: FamilyChecks = {
  configurations(adapter) {
    const configurations = new Map<string, WgslDefines>();
    for (const format of supportedFormats(adapter)) {
      for (const v of supportedVariants(adapter, format)) {
        for (const vec4 of format === 'f32' ? [false, true] : [false]) {
          const defines = matvecDefines({ format, variant: v.name, vec4 });
          configurations.set([format, ...Object.keys(defines).filter((name) => (name === 'VEC4' || name === 'SUBGROUPS') && defines[name])].join('+'), defines);
        }
      }
    }
    return configurations;
  },

  async check(kc) {
    const { adapter } = kc.gpu;
    const outcomes = new Map<string, { format: WeightFormat; variant: string; maxAbsError: number | null; problems: string[]; failedToRun: boolean }>();
    for (const format of supportedFormats(adapter)) {
      for (const { rows, cols } of matvecCheckShapes) {
        const packed = packMatrix(seededValues(rows * cols, rows), rows, cols, format);
        const problem = uploadProblem(kc.device, packed, seededValues(cols, cols), 1);
        try {
          for (const { name: variant } of supportedVariants(adapter, format)) {
            const key = `${format} ${variant}`;
            const outcome = outcomes.get(key) ?? { format, variant, maxAbsError: null, problems: [], failedToRun: false };
            outcomes.set(key, outcome);
            // A pipeline or binding that failed once (a missing entry point, a changed binding) fails at every shape.
            if (outcome.failedToRun) continue;
            try {
              const { maxAbsError, problem: wrong } = await runOnce(kc, problem, variant);
              outcome.maxAbsError = Math.max(outcome.maxAbsError ?? 0, maxAbsError);
              if (wrong) outcome.problems.push(`${rows}x${cols}: ${wrong}`);
            } catch (error) {
              await rethrowIfLost(kc.gpu);
              outcome.failedToRun = true;
              outcome.problems.push(`${rows}x${cols}: ${messageOf(error)}`);
            }
          }
        } finally {
          destroyProblem(problem);
        }
      }
    }
    return [...outcomes.values()].map(({ format, variant, maxAbsError, problems }) => ({
      format,
      variant,
      maxAbsError,
      ok: problems.length === 0,
      ...(problems.length > 0 && { error: problems.join('; ') }),
    }));
  },
};

/** One untimed dispatch of `variant`, compared with the reference. */
async function runOnce(kc: KernelContext, p: MatvecProblem, variant: string): Promise<Comparison> {
  const [dispatch] = await matvecDispatches(kc, p, variant);
  resetOutput(kc.device, p);
  await withErrorScope(kc.device, `running ${dispatch.label}`, () => {
    const encoder = kc.device.createCommandEncoder({ label: dispatch.label });
    const pass = encoder.beginComputePass();
    encodeDispatches(pass, [dispatch]);
    pass.end();
    kc.device.queue.submit([encoder.finish()]);
  });
  return compareMatvec(await readBufferF32(kc.device, p.out), p);
}

const familyChecks: Partial<Record<ShaderFamily, FamilyChecks>> = { matvec: matvecChecks };

/** The families whose edits can be checked against a CPU reference (and so may be swapped into the model). */
export const editableFamilies: readonly ShaderFamily[] = Object.keys(familyChecks) as ShaderFamily[];

/**
 * Compiles `source` as the WGSL of `family` and checks it against the reference, on its own kernel
 * context (the running model's is untouched). Bad input never throws: it comes back as errors.
 */
export async function checkShaderEdit(gpu: GpuContext, family: string, source: string): Promise<ShaderEditReport> {
  const editable = editableFamilies.find((f) => f === family);
  if (!editable) {
    return { family, accepted: false, errors: [`"${family}" is not a kernel family whose edits can be checked (editable: ${editableFamilies.join(', ')})`], checks: [] };
  }
  const checks = familyChecks[editable]!;
  const errors = await compileErrors(gpu.device, editable, source, checks.configurations(gpu.adapter));
  if (errors.length > 0) return { family, accepted: false, errors, checks: [] };

  const results = await checks.check(new KernelContext(gpu, { sources: { [editable]: source } }));
  const failed = results.filter((c) => !c.ok);
  return { family, accepted: failed.length === 0, errors: failed.map((c) => `${c.format} ${c.variant}: ${c.error}`), checks: results };
}

/**
 * The compiler's diagnostics ("matvec.wgsl:40:14: ...") over every configuration, each once; one
 * that only some configurations hit names them. The preprocessor blanks the lines it drops, so
 * line numbers point into `source`.
 */
async function compileErrors(device: GPUDevice, family: ShaderFamily, source: string, configurations: Map<string, WgslDefines>): Promise<string[]> {
  const hitBy = new Map<string, string[]>();
  for (const [label, defines] of configurations) {
    try {
      await compileShader(device, family, preprocessWgsl(source, defines, family));
    } catch (error) {
      if (!(error instanceof ShaderCompileError)) throw error;
      const lines = error.message.split('\n').filter((line) => line.startsWith(`${family}.wgsl:`));
      for (const line of lines.length > 0 ? lines : [error.message]) hitBy.set(line, [...(hitBy.get(line) ?? []), label]);
    }
  }
  return [...hitBy].map(([line, labels]) => (labels.length === configurations.size ? line : `${line} (with ${labels.join(', ')})`));
}
