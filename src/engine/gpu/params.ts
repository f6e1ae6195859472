// Uniform parameter blocks. Each kernel declares its WGSL `struct Params` once in TypeScript as an
// ordered field list; packParams lays values out by that list, and a test checks every list
// against the struct in its .wgsl file, so the two cannot drift apart.

export type ParamType = 'u32' | 'f32';
export type ParamLayout = readonly (readonly [name: string, type: ParamType])[];
export type ParamValues<L extends ParamLayout> = { [K in L[number][0]]: number };

/** Bytes a uniform block of `layout` takes: 4 per scalar, padded to a 16-byte multiple. */
export function paramsByteLength(layout: ParamLayout): number {
  return Math.max(16, Math.ceil((layout.length * 4) / 16) * 16);
}

/** Packs scalars in declaration order, into `bytes` when given (a hot path reuses one buffer). */
export function packParams<L extends ParamLayout>(layout: L, values: ParamValues<L>, bytes = new ArrayBuffer(paramsByteLength(layout))): ArrayBuffer {
  const view = new DataView(bytes);
  layout.forEach(([name, type], i) => {
    const value = (values as Record<string, number>)[name];
    if (value === undefined || !Number.isFinite(value)) throw new Error(`param ${name} is ${value}`);
    if (type === 'u32') {
      if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) throw new Error(`param ${name} = ${value} is not a u32`);
      view.setUint32(i * 4, value, true);
    } else {
      view.setFloat32(i * 4, value, true);
    }
  });
  return bytes;
}

export function createParamsBuffer<L extends ParamLayout>(device: GPUDevice, label: string, layout: L, values: ParamValues<L>): GPUBuffer {
  const data = packParams(layout, values);
  const buffer = device.createBuffer({ label, size: data.byteLength, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
  device.queue.writeBuffer(buffer, 0, data);
  return buffer;
}

/** Per-step values shared by every kernel that needs them (`struct Step` in the WGSL). */
export const stepLayout = [
  ['pos', 'u32'], // position of the token being processed
  ['seed', 'u32'], // sampler seed
  ['temperature', 'f32'],
] as const satisfies ParamLayout;
