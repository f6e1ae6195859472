// The kernel workbench. runWorkbench times every variant of an op at a shape the user picks, checks
// each against the CPU reference and sets it against the roofline probe. checkShaderEdit is the gate
// edited WGSL passes before the model compiles it: the edit must compile with every set of
// preprocessor flags the model uses on this adapter, and every format x variant it serves must
// match the reference on shapes with ragged tails.
import { RequestError, ShaderCompileError } from './errors.ts';
import { withErrorScope, type GpuContext } from './gpu/device.ts';
import { encodeDispatches, KernelContext, type Dispatch } from './gpu/kernel.ts';
import { compileShader, shaderSources, type ShaderFamily } from './gpu/shaders.ts';
import { timeDispatches, type TimingMethod } from './gpu/timing.ts';
import { preprocessWgsl, type WgslDefines } from './gpu/wgsl.ts';
import type { AdapterReport } from './engine.ts';
import { defaultProbeBytes } from './kernels/bandwidth.ts';
import { matvecDefines } from './kernels/matvec.ts';
import { createFormatMatvec, formatMatvecCost, matvecVariants, missingRequirements, supportedFormats, supportedVariants, uploadMatrix } from './kernels/matvec-variants.ts';
import { packedByteLength, packMatrix, unpackMatrix, weightFormats, type PackedMatrix, type WeightFormat } from './quant/formats.ts';
import { matvec } from './reference/ops.ts';
import { readBufferF32 } from './gpu/readback.ts';
import { seededValues } from './reference/rng.ts';
import type { ShaderEditReport, WorkbenchReport, WorkbenchRequest, WorkbenchVariantResult } from './telemetry.ts';

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

/** Fills out with sentinels, so a variant that writes nothing cannot pass on the previous one's result. */
function resetOutput(device: GPUDevice, p: MatvecProblem): void {
  device.queue.writeBuffer(p.out, 0, new Float32Array(p.packed.rows + guard).fill(sentinel));
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

function compare(output: Float32Array, p: MatvecProblem): Comparison {
  const { reference } = p;
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
  if (overwritten >= 0) return { maxAbsError, problem: `wrote past the last row (out[${rows + overwritten}] of ${rows})` };
  const nmse = squaredError / squaredReference;
  const tolerance = matvecTolerance(p.packed.cols);
  if (!(nmse <= tolerance)) {
    return { maxAbsError, problem: `differs from the CPU reference: max |error| ${maxAbsError.toExponential(2)}, NMSE ${nmse.toExponential(2)} (tolerance ${tolerance.toExponential(1)})` };
  }
  return { maxAbsError };
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
  const { adapter } = kc.gpu;
  const { format, full } = checkRequest(adapter, request);
  const { rows, cols, repetitions } = full;
  const cost = formatMatvecCost(format, rows, cols);
  const method: TimingMethod = adapter.features.timestampQuery ? 'timestamp' : 'wall';
  const edited = kc.sources.matvec !== shaderSources.matvec;
  const notRun = (variant: string, error: string): WorkbenchVariantResult => ({ variant, ms: null, gbps: null, gflops: null, fractionOfProbe: null, maxAbsError: null, error, edited });

  const results: WorkbenchVariantResult[] = [];
  let problem: MatvecProblem | undefined; // uploaded for the first variant that runs
  try {
    for (const v of matvecVariants) {
      const missing = missingRequirements(adapter, v, format);
      if (missing.length > 0) {
        results.push(notRun(v.name, `needs ${missing.join(' and ')}`));
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
        const { maxAbsError, problem: wrong } = compare(await readBufferF32(kc.device, problem.out), problem);
        const ms = timing.meanMs / dispatches.length;
        const gbps = (cost.bytesRead + cost.bytesWritten) / (ms * 1e6);
        results.push({ variant: v.name, ms, gbps, gflops: cost.flops / ms / 1e6, fractionOfProbe: gbps / probeGBps, maxAbsError, ...(wrong && { error: wrong }), edited });
      } catch (error) {
        await rethrowIfLost(kc.gpu);
        results.push(notRun(v.name, messageOf(error)));
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

/** The request with its defaults, after checking it; a RequestError says what is wrong. */
function checkRequest(adapter: AdapterReport, request: WorkbenchRequest): { format: WeightFormat; full: Required<WorkbenchRequest> } {
  const op: string = request.op;
  if (op !== 'matvec') throw new RequestError(`the workbench runs the matvec op, not "${op}"`);
  const format = weightFormats.find((f) => f === request.format);
  if (!format) throw new RequestError(`unknown weight format "${request.format}" (known: ${weightFormats.join(', ')})`);
  const { rows, cols } = request;
  for (const [name, value] of [['rows', rows], ['cols', cols]] as const) {
    if (!Number.isInteger(value) || value < 1) throw new RequestError(`${name} must be a positive whole number, got ${value}`);
  }
  const repetitions = request.repetitions ?? defaultRepetitions;
  if (!Number.isInteger(repetitions) || repetitions < 1 || repetitions > maxRepetitions) {
    throw new RequestError(`repetitions must be a whole number from 1 to ${maxRepetitions}, got ${repetitions}`);
  }
  if (rows * cols > maxWeights) throw new RequestError(`a ${rows} x ${cols} matrix has ${rows * cols} weights; the workbench takes at most ${maxWeights}`);
  const limit = Math.min(adapter.limits.maxStorageBufferBindingSize, adapter.limits.maxBufferSize);
  const buffers = [
    [`the ${rows} x ${cols} ${format} matrix`, packedByteLength(format, rows, cols)],
    [`x (${cols} floats)`, 4 * (cols + guard)],
    [`out (${rows} floats)`, 4 * (rows + guard)],
  ] as const;
  for (const [what, bytes] of buffers) {
    if (bytes > limit) throw new RequestError(`${what} takes ${bytes} bytes; this adapter binds at most ${limit} bytes in one buffer`);
  }
  return { format, full: { op, format, rows, cols, repetitions } };
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
  return compare(await readBufferF32(kc.device, p.out), p);
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
