// Putting a model's weights on the GPU, shared by the single-sequence model (gpu-model.ts) and the
// batched one (batch-model.ts): matrices packed in the chosen weight format (a file's own quantized
// blocks used as they are when the format matches), vectors and the embedding in f32.
import { withErrorScope, type GpuContext } from '../gpu/device.ts';
import { RequestError } from '../errors.ts';
import type { MatvecShape } from '../kernels/matvec.ts';
import { uploadMatrix } from '../kernels/matvec-variants.ts';
import { getTensor, type ModelDescription } from '../model/types.ts';
import { packMatrix, type WeightFormat } from '../quant/formats.ts';

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

export interface GpuWeights {
  /** The buffer of a tensor by canonical name (throws a clear error for a missing one). */
  get(name: string): GPUBuffer;
  /** Format and shape of each matrix as packed on the GPU. */
  shape(name: string): MatvecShape;
  matrixBytes: number;
  embeddingBytes: number;
  vectorBytes: number;
  /** Time from the first upload until the queue finished them all (packing included). */
  uploadMs: number;
}

export async function uploadWeights(gpu: GpuContext, model: ModelDescription, format: WeightFormat, allocator: GpuAllocator): Promise<GpuWeights> {
  const { device } = gpu;
  const c = model.config;
  const buffers = new Map<string, GPUBuffer>();
  const shapes = new Map<string, MatvecShape>();
  const started = performance.now();
  let matrixBytes = 0;
  let embeddingBytes = 0;
  let vectorBytes = 0;
  for (const [name, tensor] of model.tensors) {
    const sharesEmbedding = name === 'classifier' && tensor === model.tensors.get('tokenEmbedding');
    if (isMatrix(name) && !(sharesEmbedding && format === 'f32')) {
      const [rows, cols] = tensor.shape;
      const packed = tensor.packed?.format === format ? tensor.packed : packMatrix(tensor.data, rows, cols, format);
      allocator.checkBinding(name, packed.data.byteLength);
      const buffer = await withErrorScope(device, `uploading ${name} (${packed.byteLength} bytes)`, () => uploadMatrix(device, packed, name));
      allocator.created.push(buffer);
      buffers.set(name, buffer);
      shapes.set(name, packed);
      matrixBytes += packed.byteLength;
    } else if (!sharesEmbedding) {
      const buffer = await allocator.allocate(name, tensor.data.byteLength);
      device.queue.writeBuffer(buffer, 0, tensor.data);
      buffers.set(name, buffer);
      if (name === 'tokenEmbedding') embeddingBytes += tensor.data.byteLength;
      else vectorBytes += tensor.data.byteLength;
    }
  }
  await device.queue.onSubmittedWorkDone();
  const uploadMs = performance.now() - started;
  if (!buffers.has('classifier')) {
    // A tied f32 classifier reads the embedding table itself.
    buffers.set('classifier', buffers.get('tokenEmbedding')!);
    shapes.set('classifier', { format: 'f32', rows: c.vocabSize, cols: c.dim, paddedCols: c.dim });
  }
  return {
    get(name) {
      getTensor(model, name);
      return buffers.get(name)!;
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
