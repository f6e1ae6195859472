// Putting a model's weights on the GPU, shared by the single-sequence model (gpu-model.ts) and the
// batched one (batch-model.ts): matrices packed in the chosen weight format (a file's own quantized
// blocks used as they are when the format matches), vectors and the embedding in f32.
//
// A matrix larger than one buffer may be (the smaller of maxStorageBufferBindingSize and
// maxBufferSize, or a smaller cap for tests) is split by rows into parts, each a whole packed
// matrix in a buffer of its own. Kernels run once per part: a matvec or matmul writes the part's
// rows of the output (their outOffset), the embedding gather writes only from the part that holds
// the token's row. Every part but the last has the same number of rows.
import { withErrorScope, type GpuContext } from '../gpu/device.ts';
import { RequestError } from '../errors.ts';
import type { MatvecShape } from '../kernels/matvec.ts';
import { uploadMatrix } from '../kernels/matvec-variants.ts';
import { getTensor, type ModelDescription, type Tensor } from '../model/types.ts';
import { isQuantized, packedByteLength, packMatrix, paddedColsOf, quantLayout, type PackedMatrix, type WeightFormat } from '../quant/formats.ts';

/** The matrices that go through matvec/matmul, so in the chosen weight format. */
const matrixNames = new Set(['wq', 'wk', 'wv', 'wo', 'w1', 'w2', 'w3', 'classifier']);

function isMatrix(name: string): boolean {
  return matrixNames.has(name.slice(name.lastIndexOf('.') + 1));
}

/** Allocates storage buffers under an error scope, checks them against the binding limit, and remembers them all. */
export class GpuAllocator {
  /** Every buffer allocated, so a failed load can free them. */
  readonly created: GPUBuffer[] = [];

  constructor(private readonly device: GPUDevice) {}

  checkBinding(label: string, bytes: number): void {
    const limit = this.device.limits.maxStorageBufferBindingSize;
    if (bytes > limit) throw new RequestError(`${label} needs ${bytes} bytes but this adapter binds at most ${limit} bytes per buffer`);
  }

  allocate(label: string, bytes: number, usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC): Promise<GPUBuffer> {
    this.checkBinding(label, bytes);
    return withErrorScope(this.device, `allocating ${label} (${bytes} bytes)`, () => {
      const buffer = this.device.createBuffer({ label, size: Math.max(16, Math.ceil(bytes / 4) * 4), usage });
      this.created.push(buffer);
      return buffer;
    });
  }

  destroyAll(): void {
    for (const buffer of this.created) buffer.destroy();
  }
}

/** One buffer of a matrix split by rows: rows firstRow .. firstRow + shape.rows of the whole. */
export interface WeightPart {
  buffer: GPUBuffer;
  firstRow: number;
  /** The part as the kernels see it: a packed matrix of its own rows. */
  shape: MatvecShape;
}

export interface GpuWeights {
  /** The buffer of a vector (norm weight, bias) by canonical name; matrices and the embedding are in `parts`. */
  get(name: string): GPUBuffer;
  /** The buffers of a matrix or of the token embedding, in row order (one unless it was split). */
  parts(name: string): readonly WeightPart[];
  /** Format and shape of each whole matrix as packed on the GPU. */
  shape(name: string): MatvecShape;
  matrixBytes: number;
  embeddingBytes: number;
  vectorBytes: number;
  /** Time from the first upload until the queue finished them all (packing included). */
  uploadMs: number;
}

export interface UploadOptions {
  /** Cap on the bytes of one weight buffer below the adapter's limits (tests force splitting with it). */
  maxBindingBytes?: number;
}

/** The largest buffer a weight part may take on `device`, under an optional cap. */
export function weightBufferLimit(limits: Pick<GPUSupportedLimits, 'maxStorageBufferBindingSize' | 'maxBufferSize'>, cap = Infinity): number {
  return Math.min(cap, limits.maxStorageBufferBindingSize, limits.maxBufferSize);
}

/**
 * Rows per part of a (rows, cols) matrix in `format` so that each part's buffer (its packed bytes
 * padded to 16, see formats.ts) fits in `limit` bytes: all of them when the whole matrix fits.
 */
export function rowsPerPart(format: WeightFormat, rows: number, cols: number, limit: number, label: string): number {
  const rowBytes = packedByteLength(format, 1, cols);
  const usable = Math.floor(limit / 16) * 16;
  const fit = Math.floor(usable / rowBytes);
  if (fit < 1) throw new RequestError(`${label}: one row of ${rowBytes} bytes (${cols} ${format} weights) is larger than the ${limit}-byte buffer limit, so it cannot be split to fit`);
  return Math.min(rows, fit);
}

export async function uploadWeights(gpu: GpuContext, model: ModelDescription, format: WeightFormat, allocator: GpuAllocator, options: UploadOptions = {}): Promise<GpuWeights> {
  const { device } = gpu;
  const c = model.config;
  const limit = weightBufferLimit(device.limits, options.maxBindingBytes);
  const buffers = new Map<string, GPUBuffer>();
  const partsByName = new Map<string, WeightPart[]>();
  const shapes = new Map<string, MatvecShape>();
  const started = performance.now();
  let matrixBytes = 0;
  let embeddingBytes = 0;
  let vectorBytes = 0;
  for (const [name, tensor] of model.tensors) {
    const sharesEmbedding = name === 'classifier' && tensor === model.tensors.get('tokenEmbedding');
    if (isMatrix(name) && !(sharesEmbedding && format === 'f32')) {
      const [rows, cols] = tensor.shape;
      const parts: WeightPart[] = [];
      const step = rowsPerPart(format, rows, cols, limit, name);
      for (let firstRow = 0; firstRow < rows; firstRow += step) {
        const packed = packRows(tensor, format, firstRow, Math.min(step, rows - firstRow));
        const label = step < rows ? `${name}.part${parts.length}` : name;
        allocator.checkBinding(label, packed.data.byteLength);
        const buffer = await withErrorScope(device, `uploading ${label} (${packed.byteLength} bytes)`, () => uploadMatrix(device, packed, label));
        allocator.created.push(buffer);
        parts.push({ buffer, firstRow, shape: { format, rows: packed.rows, cols, paddedCols: packed.paddedCols } });
        matrixBytes += packed.byteLength;
      }
      partsByName.set(name, parts);
      shapes.set(name, { format, rows, cols, paddedCols: paddedColsOf(format, cols) });
    } else if (name === 'tokenEmbedding') {
      // f32 rows, split like an f32 matrix; a tied f32 classifier reads these same parts.
      const [rows, cols] = tensor.shape;
      const parts: WeightPart[] = [];
      const step = rowsPerPart('f32', rows, cols, limit, name);
      for (let firstRow = 0; firstRow < rows; firstRow += step) {
        const count = Math.min(step, rows - firstRow);
        const buffer = await allocator.allocate(step < rows ? `${name}.part${parts.length}` : name, 4 * count * cols);
        device.queue.writeBuffer(buffer, 0, tensor.data, firstRow * cols, count * cols);
        parts.push({ buffer, firstRow, shape: { format: 'f32', rows: count, cols, paddedCols: cols } });
      }
      partsByName.set(name, parts);
      embeddingBytes += tensor.data.byteLength;
    } else if (!sharesEmbedding) {
      const buffer = await allocator.allocate(name, tensor.data.byteLength);
      device.queue.writeBuffer(buffer, 0, tensor.data);
      buffers.set(name, buffer);
      vectorBytes += tensor.data.byteLength;
    }
  }
  await device.queue.onSubmittedWorkDone();
  const uploadMs = performance.now() - started;
  if (!partsByName.has('classifier')) {
    // A tied f32 classifier reads the embedding table itself.
    partsByName.set('classifier', partsByName.get('tokenEmbedding')!);
    shapes.set('classifier', { format: 'f32', rows: c.vocabSize, cols: c.dim, paddedCols: c.dim });
  }
  return {
    get(name) {
      getTensor(model, name);
      const buffer = buffers.get(name);
      if (!buffer) throw new RequestError(`${name} is a matrix: its buffers are weights.parts(${JSON.stringify(name)})`);
      return buffer;
    },
    parts(name) {
      const parts = partsByName.get(name);
      if (!parts) throw new RequestError(`${name} is not a matrix of this model`);
      return parts;
    },
    shape(name) {
      const shape = shapes.get(name);
      if (!shape) throw new RequestError(`${name} is not a matrix of this model`);
      return shape;
    },
    matrixBytes,
    embeddingBytes,
    vectorBytes,
    uploadMs,
  };
}

/**
 * Rows firstRow .. firstRow + count of a matrix tensor, packed in `format`: the file's own
 * quantized blocks when they are in that format (so the GPU multiplies exactly the file's
 * weights), otherwise packed from the f32 values.
 */
function packRows(tensor: Tensor, format: WeightFormat, firstRow: number, count: number): PackedMatrix {
  const [rows, cols] = tensor.shape;
  const packed = tensor.packed?.format === format ? tensor.packed : undefined;
  if (packed && count === rows) return packed;
  if (packed && isQuantized(format)) return quantizedRows(packed, firstRow, count);
  return packMatrix(tensor.data.subarray(firstRow * cols, (firstRow + count) * cols), count, cols, format);
}

/** Rows of a q8_0 / q4_0 matrix as a packed matrix of their own: their quant blocks, then their scales. */
function quantizedRows(m: PackedMatrix, firstRow: number, count: number): PackedMatrix {
  const format = m.format as 'q8_0' | 'q4_0';
  const whole = quantLayout(format, m.rows, m.paddedCols);
  const part = quantLayout(format, count, m.paddedCols);
  const blocks = count * whole.blocksPerRow;
  const firstBlock = firstRow * whole.blocksPerRow;
  const byteLength = packedByteLength(format, count, m.cols);
  const data = new Uint32Array(Math.ceil(byteLength / 16) * 4);
  data.set(m.data.subarray(firstBlock * whole.wordsPerBlock, (firstBlock + blocks) * whole.wordsPerBlock));
  const scales = new Uint16Array(m.data.buffer, m.data.byteOffset + 4 * whole.scalesOffset, m.rows * whole.blocksPerRow);
  new Uint16Array(data.buffer, 4 * part.scalesOffset, blocks).set(scales.subarray(firstBlock, firstBlock + blocks));
  return { format, rows: count, cols: m.cols, paddedCols: m.paddedCols, data, byteLength };
}
