// The matvec benchmark: every weight format and variant this adapter runs, at the given shapes,
// timed by gpu/timing.ts, checked against the CPU reference and set against the roofline probe.
import type { KernelContext } from '../gpu/kernel.ts';
import { timeDispatches, type TimingMethod } from '../gpu/timing.ts';
import { createFormatMatvec, supportedFormats, supportedVariants, uploadMatrix } from '../kernels/matvec-variants.ts';
import { packMatrix, unpackMatrix, type PackedMatrix, type WeightFormat } from '../quant/formats.ts';
import { matvec } from '../reference/ops.ts';
import { readBufferF32 } from '../gpu/readback.ts';
import { seededValues } from '../reference/rng.ts';

export interface MatrixShape {
  rows: number;
  cols: number;
}

export interface MatvecResult extends MatrixShape {
  op: 'matvec';
  format: WeightFormat;
  variant: string;
  /** Mean GPU time of one matvec, and its standard deviation over the samples. */
  ms: number;
  sdMs: number;
  method: TimingMethod;
  /** Bytes the cost model says one matvec must move (weights, scales, x, out) per second / 1e9. */
  gbps: number;
  /** gbps over the roofline probe's read bandwidth: 1 is as fast as memory allows. */
  fractionOfProbe: number;
  /** Largest |GPU - CPU reference| over the outputs, the reference using the same (dequantized) weights. */
  maxAbsError: number;
}

export interface MatvecBenchOptions {
  probeGBps: number;
  /**
   * Bytes each timed run streams. A matrix smaller than this is uploaded several times and one
   * run multiplies by every copy, so weights come from memory rather than a cache that would hold
   * one small matrix: in a real decode step, everything else read in between evicts it.
   */
  workingSetBytes: number;
  repetitions: number;
  warmup: number;
  onResult?: (result: MatvecResult) => void;
}

// Enough copies to defeat caches up to workingSetBytes without thousands of bind groups.
const maxCopies = 64;

export async function benchMatvec(kc: KernelContext, shapes: readonly MatrixShape[], options: MatvecBenchOptions): Promise<MatvecResult[]> {
  const results: MatvecResult[] = [];
  for (const shape of shapes) {
    for (const result of await benchShape(kc, shape, options)) {
      results.push(result);
      options.onResult?.(result);
    }
  }
  return results;
}


async function benchShape(kc: KernelContext, { rows, cols }: MatrixShape, options: MatvecBenchOptions): Promise<MatvecResult[]> {
  const { device } = kc;
  const x = seededValues(cols, 1);
  const values = seededValues(rows * cols, 2);
  const storage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST;
  const xBuffer = device.createBuffer({ label: 'bench.x', size: 4 * cols, usage: storage });
  device.queue.writeBuffer(xBuffer, 0, x);
  const out = device.createBuffer({ label: 'bench.out', size: 4 * rows, usage: storage | GPUBufferUsage.COPY_SRC });
  const results: MatvecResult[] = [];
  try {
    for (const format of supportedFormats(kc.gpu.adapter)) {
      const packed = packMatrix(values, rows, cols, format);
      // One reference per shape and format: every variant must reproduce it.
      const reference = new Float32Array(rows);
      matvec(reference, unpackMatrix(packed), x, rows, cols);
      const copies = Math.min(maxCopies, Math.max(1, Math.ceil(options.workingSetBytes / packed.byteLength)));
      const weights = Array.from({ length: copies }, (_, i) => uploadMatrix(device, packed, `bench.${format}.${rows}x${cols}.${i}`));
      try {
        for (const variant of supportedVariants(kc.gpu.adapter, format)) {
          results.push(await benchVariant(kc, packed, variant.name, { weights, x: xBuffer, out }, reference, options));
        }
      } finally {
        for (const w of weights) w.destroy();
      }
    }
  } finally {
    xBuffer.destroy();
    out.destroy();
  }
  return results;
}

async function benchVariant(
  kc: KernelContext,
  m: PackedMatrix,
  variant: string,
  b: { weights: GPUBuffer[]; x: GPUBuffer; out: GPUBuffer },
  reference: Float32Array,
  options: MatvecBenchOptions,
): Promise<MatvecResult> {
  const { format, rows, cols, paddedCols } = m;
  const label = `bench.${format}.${variant}.${rows}x${cols}`;
  const dispatches = await Promise.all(b.weights.map((weight) => createFormatMatvec(kc, label, { weight, x: b.x, out: b.out }, { format, rows, cols, paddedCols }, variant)));
  // Zero the output first, so a variant that writes nothing cannot pass on the last one's result.
  const encoder = kc.device.createCommandEncoder();
  encoder.clearBuffer(b.out);
  kc.device.queue.submit([encoder.finish()]);

  const timing = await timeDispatches(kc.gpu, dispatches, { repetitions: options.repetitions, warmup: options.warmup });
  const output = await readBufferF32(kc.device, b.out);
  let maxAbsError = 0; // Math.max makes a NaN output stick
  for (let r = 0; r < rows; r++) maxAbsError = Math.max(maxAbsError, Math.abs(output[r] - reference[r]));

  const ms = timing.meanMs / dispatches.length;
  const { bytesRead, bytesWritten } = dispatches[0].cost;
  const gbps = (bytesRead + bytesWritten) / (ms * 1e6);
  return {
    op: 'matvec',
    format,
    variant,
    rows,
    cols,
    ms,
    sdMs: timing.sdMs / dispatches.length,
    method: timing.method,
    gbps,
    fractionOfProbe: gbps / options.probeGBps,
    maxAbsError,
  };
}


/** The fastest result of a format at a shape. */
export function fastest(results: readonly MatvecResult[], format: WeightFormat, { rows, cols }: MatrixShape): MatvecResult | undefined {
  const matching = results.filter((r) => r.format === format && r.rows === rows && r.cols === cols);
  return matching.reduce<MatvecResult | undefined>((best, r) => (!best || r.ms < best.ms ? r : best), undefined);
}
