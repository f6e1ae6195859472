// Every matmul variant this adapter supports, for every weight format it supports, against the CPU
// product with the dequantized weights (unpackMatrix: exactly what the GPU multiplies with), on
// token counts and shapes off the 32 x 32 x 32 tile (stories260K's 172 x 64 and 64 x 172 among
// them), with NaN after x and sentinels after out. At m = 1 the result is checked against the
// matvec kernel on the same packed weights. The requirement checks, the uniform layout and the
// cost model run here too.
import { describe, expect, it } from 'vitest';
import type { AdapterReport } from '../src/engine/engine.ts';
import { KernelContext } from '../src/engine/gpu/kernel.ts';
import { shaderSources } from '../src/engine/gpu/shaders.ts';
import { preprocessWgsl } from '../src/engine/gpu/wgsl.ts';
import {
  createMatmulDispatch,
  matmulCost,
  matmulDefines,
  matmulVariants,
  missingMatmulRequirements,
  referenceMatmul,
  supportedMatmulVariants,
} from '../src/engine/kernels/matmul.ts';
import { createFormatMatvec, uploadMatrix } from '../src/engine/kernels/matvec-variants.ts';
import { packMatrix, weightFormats, type PackedMatrix, type WeightFormat } from '../src/engine/quant/formats.ts';
import { downloadF32, maxAbsDiff, nmse, run, seededRandom, testGpu, testKernels, upload } from './helpers/gpu.ts';

const sentinel = 12345.5;
const guard = 16;

const adapter = (await testGpu()).adapter;
// One context for the file: SwiftShader compiles a pipeline in about a second, so each is compiled once.
const kc = await testKernels();
const formats = weightFormats.filter((format) => supportedMatmulVariants(adapter, format).length > 0);
const cases = formats.flatMap((format) => supportedMatmulVariants(adapter, format).map((v) => [format, v.name] as const));

// The reference multiplies by exactly the weights the kernels dequantize (a q8_0 / q4_0 weight is
// level * scale, exact in f32), so every format has the same tolerance: f32 summation order alone.
const tolerance = 1e-10;

const shapes: [m: number, rows: number, cols: number][] = [
  [1, 172, 64],
  [3, 64, 172],
  [17, 37, 96],
  [64, 288, 288],
  [100, 9, 33], // four blocks of tokens, the last one partial; one ragged slice of columns
  [2, 1, 1],
  [512, 5, 40], // m at the top of its range (1..512)
];

interface Problem {
  packed: PackedMatrix;
  x: Float32Array;
  buffers: { weight: GPUBuffer; x: GPUBuffer; out: GPUBuffer };
}

function problem(device: GPUDevice, format: WeightFormat, m: number, rows: number, cols: number): Problem {
  const rand = seededRandom(m * 1009 + rows * 31 + cols);
  const packed = packMatrix(rand(rows * cols), rows, cols, format);
  const x = rand(m * cols);
  // NaN after x: a kernel that multiplies past the last token's `cols` (even by a zero padding weight) shows it.
  const xBuffer = upload(device, Float32Array.of(...x, ...new Array(40).fill(NaN)));
  const out = upload(device, new Float32Array(m * rows + guard).fill(sentinel));
  return { packed, x, buffers: { weight: uploadMatrix(device, packed, 'w'), x: xBuffer, out } };
}

describe.each(cases)('%s matmul, %s', (format, variant) => {
  it.each(shapes)('%i tokens x %i x %i match the dequantized product', async (m, rows, cols) => {
    const p = problem(kc.device, format, m, rows, cols);
    await run(kc.device, await createMatmulDispatch(kc, 'test', p.buffers, p.packed, m, variant));
    const result = await downloadF32(kc.device, p.buffers.out);

    expect(nmse(result.subarray(0, m * rows), referenceMatmul(p.packed, p.x, m))).toBeLessThan(tolerance);
    expect(Array.from(result.subarray(m * rows)).every((v) => v === sentinel)).toBe(true);
    expect(kc.gpu.takeUncapturedErrors()).toEqual([]);
  });

  it('at one token gives the matvec kernel’s product', async () => {
    const p = problem(kc.device, format, 1, 172, 64);
    const matvecOut = upload(kc.device, new Float32Array(172));
    const matvec = await createFormatMatvec(kc, 'matvec', { ...p.buffers, out: matvecOut }, p.packed, 'naive');
    await run(kc.device, matvec, await createMatmulDispatch(kc, 'matmul', p.buffers, p.packed, 1, variant));
    const expected = await downloadF32(kc.device, matvecOut);
    const result = (await downloadF32(kc.device, p.buffers.out)).subarray(0, 172);
    if (variant === 'naive') {
      // The same unit_dot in the same order as matvec's naive strategy: bit for bit.
      expect(Array.from(result)).toEqual(Array.from(expected));
    } else {
      // Dequantize-then-multiply sums the 64 products in another order: f32 rounding apart.
      expect(maxAbsDiff(result, expected)).toBeLessThan(1e-5);
      expect(nmse(result, expected)).toBeLessThan(tolerance);
    }
  });
});

describe('matmul dispatch', () => {
  it('serves every token count from one pipeline, each with its own grid', async () => {
    const p = problem(kc.device, 'q8_0', 100, 172, 64);
    const tiled3 = await createMatmulDispatch(kc, 'tiled3', p.buffers, p.packed, 3, 'tiled');
    const tiled100 = await createMatmulDispatch(kc, 'tiled100', p.buffers, p.packed, 100, 'tiled');
    expect(tiled100.pipeline).toBe(tiled3.pipeline);
    expect(tiled3.workgroups).toEqual([6, 1, 1]);
    expect(tiled100.workgroups).toEqual([6, 4, 1]);
    expect((await createMatmulDispatch(kc, 'naive', p.buffers, p.packed, 100, 'naive')).workgroups).toEqual([3, 100, 1]);
  });

  it('refuses unknown variants, bad token counts, wrong padding and grids past the limit', async () => {
    const p = problem(kc.device, 'q4_0', 1, 4, 32);
    await expect(createMatmulDispatch(kc, 't', p.buffers, p.packed, 1, 'fastest')).rejects.toThrow(/unknown matmul variant "fastest" \(known: naive, tiled\)/);
    await expect(createMatmulDispatch(kc, 't', p.buffers, p.packed, 0, 'tiled')).rejects.toThrow(/0 tokens/);
    await expect(createMatmulDispatch(kc, 't', p.buffers, p.packed, 2.5, 'naive')).rejects.toThrow(/2.5 tokens/);
    await expect(createMatmulDispatch(kc, 't', p.buffers, { ...p.packed, paddedCols: 33 }, 1, 'naive')).rejects.toThrow(/padded to 32, not 33/);
    const small = await testKernels(4);
    await expect(createMatmulDispatch(small, 't', p.buffers, p.packed, 5, 'naive')).rejects.toThrow(/1 x 5 x 1 workgroups exceeds 4/);
  });

  it('costs the packed weights once, x and out once per token, 2 flops per weight per token', () => {
    expect(matmulCost('q4_0', 2, 40, 3)).toEqual({ bytesRead: 2 * 64 * 0.5625 + 3 * 160, bytesWritten: 3 * 8, flops: 3 * 160 });
    expect(matmulCost('f32', 3, 5, 1)).toEqual({ bytesRead: 60 + 20, bytesWritten: 12, flops: 30 });
  });
});

describe('matmul requirements', () => {
  const bare: AdapterReport = { ...adapter, features: { shaderF16: false, subgroups: false, timestampQuery: false } };
  const rich: AdapterReport = { ...adapter, features: { shaderF16: true, subgroups: true, timestampQuery: true } };
  const tiled = matmulVariants.find((v) => v.name === 'tiled')!;

  it('runs both variants on every format that needs no feature', () => {
    expect(formats).toEqual(expect.arrayContaining(['f32', 'f16', 'q8_0', 'q4_0']));
    for (const format of formats) expect(supportedMatmulVariants(adapter, format).map((v) => v.name)).toEqual(['naive', 'tiled']);
  });

  it('declares the tiled kernel’s 64 threads and 8 KiB of x and weight slices', () => {
    expect(tiled.requires).toEqual({ features: [], invocations: 64, workgroupStorageBytes: 8192 });
    expect(matmulVariants.find((v) => v.name === 'naive')?.requires.workgroupStorageBytes).toBe(0);
  });

  it('names what an adapter lacks: shader-f16 for f16-native, threads, workgroup storage', () => {
    expect(supportedMatmulVariants(bare, 'f16-native')).toEqual([]);
    expect(missingMatmulRequirements(bare, tiled, 'f16-native')).toEqual(["the 'shader-f16' feature"]);
    expect(supportedMatmulVariants(rich, 'f16-native').map((v) => v.name)).toEqual(['naive', 'tiled']);
    const tiny = { ...rich, limits: { ...rich.limits, maxComputeWorkgroupStorageSize: 4096, maxComputeInvocationsPerWorkgroup: 32 } };
    expect(missingMatmulRequirements(tiny, tiled, 'q4_0')).toEqual(['64 threads per workgroup (limit 32)', '8192 bytes of workgroup storage (limit 4096)']);
  });

  it('refuses a variant the adapter cannot run, saying why', async () => {
    const p = problem(kc.device, 'f16', 1, 4, 32);
    const starved = new KernelContext({ ...kc.gpu, adapter: { ...adapter, limits: { ...adapter.limits, maxComputeWorkgroupStorageSize: 4096 } } });
    await expect(createMatmulDispatch(starved, 't', p.buffers, p.packed, 1, 'tiled')).rejects.toThrow(/"tiled" on f16 weights needs 8192 bytes of workgroup storage/);
    if (!adapter.features.shaderF16) {
      await expect(createMatmulDispatch(kc, 't', p.buffers, { ...p.packed, format: 'f16-native' }, 1, 'naive')).rejects.toThrow(/'shader-f16' feature/);
    }
  });
});

describe('matmul WGSL', () => {
  it('expands the f16-native source with enable f16 and vec2<f16> weights (it compiles only with shader-f16)', () => {
    const source = preprocessWgsl(shaderSources.matmul, matmulDefines({ format: 'f16-native', vec4: false }), 'matmul');
    expect(source).toMatch(/^enable f16;$/m);
    expect(source).toMatch(/array<vec2<f16>>/);
    expect(source).not.toMatch(/unpack2x16float\(weight\[row/);
  });
});
