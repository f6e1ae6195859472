// Every matvec variant this adapter supports, for every weight format it supports, against the CPU
// product with the dequantized weights (unpackMatrix: exactly what the GPU multiplies with), on
// shapes with row tails (172, 100, 45, 8, 1 columns), a grid overflowing into y, NaN after x and
// sentinels after the output. The registry's requirement checks and the tuner run here too.
import { describe, expect, it } from 'vitest';
import type { AdapterReport } from '../src/engine/engine.ts';
import { KernelContext } from '../src/engine/gpu/kernel.ts';
import { preprocessWgsl } from '../src/engine/gpu/wgsl.ts';
import { shaderSources } from '../src/engine/gpu/shaders.ts';
import { matvecDefines } from '../src/engine/kernels/matvec.ts';
import {
  createFormatMatvec,
  formatMatvecCost,
  matvecVariants,
  missingRequirements,
  supportedFormats,
  supportedVariants,
  tuneMatvec,
  uploadMatrix,
  type TuningStore,
} from '../src/engine/kernels/matvec-variants.ts';
import { packMatrix, unpackMatrix, weightFormats } from '../src/engine/quant/formats.ts';
import * as ref from '../src/engine/reference/ops.ts';
import { downloadF32, nmse, run, seededRandom, testGpu, testKernels, upload } from './helpers/gpu.ts';

const sentinel = 12345.5;
const guard = 16;

const adapter = (await testGpu()).adapter;
const formats = supportedFormats(adapter);
const cases = formats.flatMap((format) => supportedVariants(adapter, format).map((v) => [format, v.name] as const));

const shapes: [rows: number, cols: number, maxWorkgroupsPerDimension?: number][] = [
  [1, 1],
  [8, 172],
  [172, 64],
  [5, 300],
  [64, 8],
  [33, 100],
  [7, 45],
  [300, 5, 4], // a grid limit of 4 groups per dimension forces the y-overflow path for every variant
];

describe.each(cases)('%s matvec, %s', (format, variant) => {
  it.each(shapes)('%i x %i matches the dequantized product', async (rows, cols, maxWorkgroupsPerDimension?: number) => {
    const kc = await testKernels(maxWorkgroupsPerDimension);
    const rand = seededRandom(rows * 31 + cols);
    const m = packMatrix(rand(rows * cols), rows, cols, format);
    const x = rand(cols);
    // NaN after x: a kernel that multiplies past `cols` (even by a zero padding weight) shows it.
    const xBuffer = upload(kc.device, Float32Array.of(...x, ...new Array(40).fill(NaN)));
    const out = upload(kc.device, new Float32Array(rows + guard).fill(sentinel));
    const dispatch = await createFormatMatvec(kc, 'test', { weight: uploadMatrix(kc.device, m, 'w'), x: xBuffer, out }, m, variant);
    await run(kc.device, dispatch);
    const result = await downloadF32(kc.device, out);

    const expected = new Float32Array(rows);
    ref.matvec(expected, unpackMatrix(m), x, rows, cols);
    expect(nmse(result.subarray(0, rows), expected)).toBeLessThan(1e-10);
    expect(Array.from(result.subarray(rows)).every((v) => v === sentinel)).toBe(true);
    expect(kc.gpu.takeUncapturedErrors()).toEqual([]);
  });
});

describe('WGSL preprocessor', () => {
  const source = ['a', '#if A', 'b', '#elif !B', 'c', '#else', 'd', '#if B', 'e', '#endif', '#endif', 'f'].join('\n');
  const kept = (defines: Record<string, boolean>) => preprocessWgsl(source, defines, 't').split('\n');

  it('keeps the taken branch and blanks the rest, preserving line numbers', () => {
    expect(kept({ A: true, B: true })).toEqual(['a', '', 'b', '', '', '', '', '', '', '', '', 'f']);
    expect(kept({ A: false, B: false })).toEqual(['a', '', '', '', 'c', '', '', '', '', '', '', 'f']);
    expect(kept({ A: false, B: true })).toEqual(['a', '', '', '', '', '', 'd', '', 'e', '', '', 'f']);
  });

  it.each([
    ['#if A\nx', { A: true }, /t\.wgsl:1: #if without #endif/],
    ['x\n#endif', {}, /t\.wgsl:2: #endif without #if/],
    ['#else', {}, /#else without #if/],
    ['#if A\n#else\n#else\n#endif', { A: true }, /t\.wgsl:3: a second #else/],
    ['#if A\n#else\n#elif A\n#endif', { A: true }, /#elif after #else/],
    ['#if TYPO\n#endif', { A: true }, /TYPO is not defined \(defines: A\)/],
    ['#if A && B\n#endif', { A: true, B: true }, /expected NAME or !NAME/],
    ['#ifdef A\n#endif', { A: true }, /unknown directive #ifdef/],
  ])('rejects %j', (text, defines, message) => {
    expect(() => preprocessWgsl(text, defines, 't')).toThrow(message);
  });
});

describe('matvec registry', () => {
  const bare: AdapterReport = { ...adapter, features: { shaderF16: false, subgroups: false, timestampQuery: false } };
  const rich: AdapterReport = { ...adapter, features: { shaderF16: true, subgroups: true, timestampQuery: true } };

  it('runs at least naive, splitK and multiRow for every format that needs no feature', () => {
    expect(formats).toEqual(expect.arrayContaining(['f32', 'f16', 'q8_0', 'q4_0']));
    for (const format of formats) expect(supportedVariants(adapter, format).map((v) => v.name)).toEqual(expect.arrayContaining(['naive', 'splitK', 'multiRow']));
    if (adapter.features.subgroups) expect(cases).toContainEqual(['q4_0', 'subgroup']);
  });

  it('reports requirements: subgroup needs subgroups, f16-native needs shader-f16', () => {
    expect(matvecVariants.map((v) => v.name)).toEqual(['naive', 'splitK', 'subgroup', 'multiRow']);
    expect(matvecVariants.find((v) => v.name === 'subgroup')?.requires.features).toEqual(['subgroups']);
    expect(supportedVariants(bare, 'q8_0').map((v) => v.name)).toEqual(['naive', 'splitK', 'multiRow']);
    expect(supportedFormats(bare)).toEqual(['f32', 'f16', 'q8_0', 'q4_0']);
    expect(supportedFormats(rich)).toEqual(weightFormats);
    expect(supportedVariants(rich, 'f16-native')).toHaveLength(4);
    const tiny = { ...rich, limits: { ...rich.limits, maxComputeWorkgroupStorageSize: 128 } };
    expect(missingRequirements(tiny, matvecVariants[1], 'f32')).toEqual(['256 bytes of workgroup storage (limit 128)']);
  });

  it('refuses unsupported variants with a message naming what is missing', async () => {
    const kc = await testKernels();
    const buffers = { weight: upload(kc.device, new Float32Array(64)), x: upload(kc.device, new Float32Array(32)), out: upload(kc.device, new Float32Array(4)) };
    const shape = { rows: 4, cols: 32, paddedCols: 32 };
    if (!adapter.features.shaderF16) {
      await expect(createFormatMatvec(kc, 'test', buffers, { ...shape, format: 'f16-native' }, 'naive')).rejects.toThrow(/'shader-f16' feature/);
    }
    const withoutSubgroups = new KernelContext({ ...kc.gpu, adapter: bare });
    await expect(createFormatMatvec(withoutSubgroups, 'test', buffers, { ...shape, format: 'q4_0' }, 'subgroup')).rejects.toThrow(/'subgroups' feature/);
    await expect(createFormatMatvec(kc, 'test', buffers, { ...shape, format: 'q4_0' }, 'fastest')).rejects.toThrow(/unknown matvec variant "fastest"/);
    await expect(createFormatMatvec(kc, 'test', buffers, { ...shape, format: 'q4_0', paddedCols: 33 }, 'naive')).rejects.toThrow(/padded to 32/);
  });

  it('expands the f16-native source with enable f16 and vec2<f16> weights (it compiles only with shader-f16)', () => {
    const source = preprocessWgsl(shaderSources.matvec, matvecDefines({ format: 'f16-native', variant: 'naive', vec4: false }), 'matvec');
    expect(source).toMatch(/^enable f16;$/m);
    expect(source).toMatch(/array<vec2<f16>>/);
    expect(source).not.toMatch(/unpack2x16float\(weight/);
  });

  it('costs the packed bytes, x and out', () => {
    expect(formatMatvecCost('q4_0', 2, 40)).toEqual({ bytesRead: 2 * 64 * 0.5625 + 160, bytesWritten: 8, flops: 160 });
    expect(formatMatvecCost('f32', 3, 5)).toEqual({ bytesRead: 60 + 20, bytesWritten: 12, flops: 30 });
  });
});

describe('tuneMatvec', () => {
  it('returns a supported variant with timings for each, and caches the answer', async () => {
    const kc = await testKernels();
    const saved = new Map<string, string>();
    const store: TuningStore = { get: (k) => saved.get(k), set: (k, v) => void saved.set(k, v) };
    const tuning = await tuneMatvec(kc, 'q4_0', { rows: 64, cols: 96 }, store);
    const names = supportedVariants(adapter, 'q4_0').map((v) => v.name);
    expect(names).toContain(tuning.variant);
    expect(Object.keys(tuning.timings).sort()).toEqual([...names].sort());
    expect(Object.values(tuning.timings).every((ms) => ms > 0 && Number.isFinite(ms))).toBe(true);
    expect(saved.size).toBe(1);
    expect(await tuneMatvec(kc, 'q4_0', { rows: 64, cols: 96 }, store)).toBe(tuning); // from memory
  });

  it('takes a stored answer without timing, unless the adapter cannot run it', async () => {
    const kc = await testKernels();
    const key = (k: string) => k.endsWith(':q8_0:48x64');
    const stored: TuningStore = { get: (k) => (key(k) ? JSON.stringify({ variant: 'multiRow', timings: { multiRow: 1 } }) : undefined), set: () => {} };
    expect(await tuneMatvec(kc, 'q8_0', { rows: 48, cols: 64 }, stored)).toEqual({ variant: 'multiRow', timings: { multiRow: 1 } });

    const unsupported: TuningStore = { get: () => JSON.stringify({ variant: 'warp-specialized', timings: {} }), set: () => {} };
    const tuning = await tuneMatvec(kc, 'f16', { rows: 40, cols: 64 }, unsupported);
    expect(supportedVariants(adapter, 'f16').map((v) => v.name)).toContain(tuning.variant);
  });
});
