// The kernel workbench on the test adapter: every registry variant of a format timed and checked at
// an odd shape (unsupported ones say what they lack), every attention variant (paged whole, splitK,
// unfused and the contiguous kernel) timed and checked on shuffled pages, bad requests refused, and
// edited matvec WGSL accepted only when it compiles everywhere and matches the reference for every
// format x variant.
import { describe, expect, it } from 'vitest';
import { RequestError } from '../src/engine/errors.ts';
import { KernelContext } from '../src/engine/gpu/kernel.ts';
import { shaderSources } from '../src/engine/gpu/shaders.ts';
import { attentionCost } from '../src/engine/kernels/attention.ts';
import { formatMatvecCost, matvecVariants, missingRequirements, supportedFormats, supportedVariants } from '../src/engine/kernels/matvec-variants.ts';
import { defaultPagedAttentionTiling, missingPagedAttentionRequirements, pagedAttentionVariants, pagedAttentionWholeCost, type PagedAttentionShape } from '../src/engine/kernels/paged-attention.ts';
import type { AttentionWorkbenchRequest, WorkbenchRequest } from '../src/engine/telemetry.ts';
import { attentionTolerance, checkShaderEdit, editableFamilies, matvecTolerance, runWorkbench } from '../src/engine/workbench.ts';
import { testGpu, testKernels } from './helpers/gpu.ts';

const gpu = await testGpu();
const { adapter } = gpu;
const probeGBps = 12.5;
// Two timed runs keep the barrier variants quick on SwiftShader; the figures need not be precise here.
const shape = { rows: 37, cols: 172, repetitions: 2 };

/** The shipped matvec source with line `line` (1-based) replaced. */
function withLine(line: number, text: string): string {
  const lines = shaderSources.matvec.split('\n');
  lines[line - 1] = text;
  return lines.join('\n');
}

/** The 1-based line of the shipped matvec source that starts with `prefix`. */
function lineOf(prefix: string): number {
  const index = shaderSources.matvec.split('\n').findIndex((text) => text.trimStart().startsWith(prefix));
  expect(index, prefix).toBeGreaterThanOrEqual(0);
  return index + 1;
}

describe('runWorkbench', () => {
  it.each([
    ['q4_0', false],
    ['f32', true],
  ] as const)('runs every %s variant at 37 x 172 against the reference (edited source: %s)', { timeout: 120_000 }, async (format, edited) => {
    // A trailing comment is an edit: the results must say the WGSL is not the shipped file.
    const kc = edited ? new KernelContext(gpu, { sources: { matvec: `${shaderSources.matvec}\n// tried in the editor\n` } }) : await testKernels();
    const report = await runWorkbench(kc, probeGBps, { op: 'matvec', format, ...shape });

    expect(report.request).toEqual({ op: 'matvec', format, ...shape });
    expect(report).toMatchObject({ ...formatMatvecCost(format, 37, 172), probeGBps, method: adapter.features.timestampQuery ? 'timestamp' : 'wall' });
    expect(report.results.map((r) => r.variant)).toEqual(matvecVariants.map((v) => v.name));
    const supported = supportedVariants(adapter, format).map((v) => v.name);
    expect(supported).toEqual(expect.arrayContaining(['naive', 'splitK', 'multiRow']));
    for (const r of report.results) {
      expect(r.edited).toBe(edited);
      if (!supported.includes(r.variant as never)) {
        expect(r).toMatchObject({ ms: null, gbps: null, maxAbsError: null, error: expect.stringMatching(/^needs /) });
        continue;
      }
      expect(r.error, r.variant).toBeUndefined();
      expect(Number.isFinite(r.ms) && r.ms! > 0).toBe(true);
      expect(r.gbps).toBeCloseTo((report.bytesRead + report.bytesWritten) / (r.ms! * 1e6), 9);
      expect(r.gbps!).toBeGreaterThan(0);
      expect(r.gflops).toBeCloseTo(report.flops / r.ms! / 1e6, 9);
      expect(r.fractionOfProbe).toBeCloseTo(r.gbps! / probeGBps, 12);
      // Against the same dequantized weights only f32 rounding differs (outputs are about 1 to 10).
      expect(r.maxAbsError!).toBeGreaterThanOrEqual(0);
      expect(r.maxAbsError!).toBeLessThan(1e-4);
    }
    expect(gpu.takeUncapturedErrors()).toEqual([]);
  });

  it('times a variant that computes a wrong result and says so', { timeout: 120_000 }, async () => {
    const line = lineOf('sum += dot(vec4<f32>(low) - 8.0');
    const kc = new KernelContext(gpu, { sources: { matvec: withLine(line, shaderSources.matvec.split('\n')[line - 1].replaceAll('- 8.0', '- 7.0')) } });
    const report = await runWorkbench(kc, probeGBps, { op: 'matvec', format: 'q4_0', rows: 9, cols: 40, repetitions: 1 });
    for (const r of report.results.filter((r) => r.ms !== null)) {
      expect(r.ms!).toBeGreaterThan(0);
      expect(r.maxAbsError!).toBeGreaterThan(1e-2);
      expect(r.error).toMatch(/^differs from the CPU reference: max \|error\| \S+, NMSE \S+ \(tolerance 1\.0e-10\)$/);
      expect(r.edited).toBe(true);
    }
    expect(report.results.filter((r) => r.ms !== null)).toHaveLength(supportedVariants(adapter, 'q4_0').length);
  });

  it('lists f16-native variants without running them when the adapter lacks shader-f16', async () => {
    const report = await runWorkbench(await testKernels(), probeGBps, { op: 'matvec', format: 'f16-native', rows: 37, cols: 172 });
    expect(report.request.repetitions).toBe(10);
    expect(report.results).toHaveLength(matvecVariants.length);
    for (const [i, r] of report.results.entries()) {
      const missing = missingRequirements(adapter, matvecVariants[i], 'f16-native');
      if (missing.length === 0) continue; // an adapter with shader-f16 runs them (checked above for other formats)
      expect(r).toEqual({ variant: matvecVariants[i].name, ms: null, gbps: null, gflops: null, fractionOfProbe: null, maxAbsError: null, error: `needs ${missing.join(' and ')}`, edited: false });
      expect(r.error).toMatch(/shader-f16/);
    }
    if (!adapter.features.shaderF16) expect(report.results.every((r) => r.ms === null)).toBe(true);
  });

  const request: WorkbenchRequest = { op: 'matvec', format: 'q4_0', rows: 8, cols: 32 };
  it.each([
    [{ ...request, op: 'softmax' as 'matvec' }, /^the workbench runs the matvec and attention ops, not "softmax"$/],
    [{ ...request, format: 'q5_k' }, /unknown weight format "q5_k" \(known: f32, f16, f16-native, q8_0, q4_0\)/],
    [{ ...request, rows: 0 }, /rows must be a positive whole number, got 0/],
    [{ ...request, cols: 1.5 }, /cols must be a positive whole number, got 1.5/],
    [{ ...request, rows: NaN }, /rows must be a positive whole number, got NaN/],
    [{ ...request, repetitions: 0 }, /repetitions must be a whole number from 1 to 1000, got 0/],
    [{ ...request, rows: 1 << 20, cols: 1 << 20 }, /has 1099511627776 weights; the workbench takes at most 134217728/],
  ])('refuses %j', async (bad, message) => {
    const error = await runWorkbench(await testKernels(), probeGBps, bad).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RequestError);
    expect((error as Error).message).toMatch(message);
  });

  it('refuses a matrix larger than the adapter binds in one buffer', async () => {
    const small = { ...adapter, limits: { ...adapter.limits, maxStorageBufferBindingSize: 1 << 20 } };
    const kc = new KernelContext({ ...gpu, adapter: small });
    const refused = runWorkbench(kc, probeGBps, { op: 'matvec', format: 'f32', rows: 1024, cols: 1024 });
    await expect(refused).rejects.toThrow(RequestError);
    await expect(refused).rejects.toThrow(/the 1024 x 1024 f32 matrix takes 4194304 bytes; this adapter binds at most 1048576 bytes/);
  });
});

describe('runWorkbench attention', () => {
  // Two sequences of 37 tokens (five pages of 8, the last partly empty), GQA 2, heads of 16.
  const request: AttentionWorkbenchRequest = { op: 'attention', batch: 2, length: 37, nHeads: 4, nKvHeads: 2, headDim: 16, blockSize: 8, repetitions: 2 };
  const shapeOf = (r: AttentionWorkbenchRequest): PagedAttentionShape => ({ ...r, nLayers: 1, layer: 0, maxLength: r.length, ...defaultPagedAttentionTiling });
  // Outputs are averages of values in [-1, 1); every variant only reorders f32 sums (about 1e-7 here).
  const maxAbsError = 1e-5;

  it('times every paged variant and the contiguous kernel, each against the reference', { timeout: 120_000 }, async () => {
    const report = await runWorkbench(await testKernels(), probeGBps, request);
    const shape = shapeOf(request);
    const lengths = [37, 37];

    expect(report.request).toEqual(request);
    expect(report).toMatchObject({ ...pagedAttentionWholeCost(shape, lengths), probeGBps, method: adapter.features.timestampQuery ? 'timestamp' : 'wall' });
    expect(report.results.map((r) => r.variant)).toEqual(['whole', 'splitK', 'unfused', 'contiguous']);
    // Each variant's rates come from its own declared cost: the sum over its passes (the
    // contiguous kernel: one dispatch per sequence).
    const contiguousShape = { nHeads: 4, nKvHeads: 2, headDim: 16, maxSeq: 37, cacheOffset: 0 };
    const declared = [
      ...pagedAttentionVariants.map((v) => v.cost(shape, lengths)),
      [attentionCost(contiguousShape, 37), attentionCost(contiguousShape, 37)],
    ].map((costs) => ({ bytes: costs.reduce((t, c) => t + c.bytesRead + c.bytesWritten, 0), flops: costs.reduce((t, c) => t + c.flops, 0) }));
    for (const [i, r] of report.results.entries()) {
      expect(r.error, r.variant).toBeUndefined();
      expect(r.edited).toBe(false);
      expect(Number.isFinite(r.ms) && r.ms! > 0).toBe(true);
      expect(r.gbps).toBeCloseTo(declared[i].bytes / (r.ms! * 1e6), 9);
      expect(r.gflops).toBeCloseTo(declared[i].flops / r.ms! / 1e6, 9);
      expect(r.fractionOfProbe).toBeCloseTo(r.gbps! / probeGBps, 12);
      expect(r.maxAbsError!).toBeGreaterThanOrEqual(0);
      expect(r.maxAbsError!).toBeLessThan(maxAbsError);
    }
    // The scores' round trips: the unfused variant moves more bytes than the fused one for the same answer.
    expect(declared[2].bytes).toBeGreaterThan(declared[0].bytes);
    expect(gpu.takeUncapturedErrors()).toEqual([]);
  });

  it('runs a single token with GQA 4 and pages of 32', { timeout: 120_000 }, async () => {
    const report = await runWorkbench(await testKernels(), probeGBps, { op: 'attention', batch: 3, length: 1, nHeads: 8, nKvHeads: 2, headDim: 8, blockSize: 32, repetitions: 1 });
    expect(report.request.repetitions).toBe(1);
    for (const r of report.results) {
      expect(r.error, r.variant).toBeUndefined();
      expect(r.maxAbsError!).toBeLessThan(maxAbsError);
    }
  });

  it('says which variant an edit breaks and marks only the edited family', { timeout: 120_000 }, async () => {
    // The softmax divides by twice the sum: only the unfused variant's output halves.
    const division = 'scoreRows[row + t] = scoreRows[row + t] / rowSum;';
    expect(shaderSources['paged-attention']).toContain(division);
    const kc = new KernelContext(gpu, { sources: { 'paged-attention': shaderSources['paged-attention'].replace(division, division.replace('rowSum', '(2.0 * rowSum)')) } });
    const report = await runWorkbench(kc, probeGBps, request);
    const byVariant = Object.fromEntries(report.results.map((r) => [r.variant, r]));
    for (const variant of ['whole', 'splitK', 'contiguous']) {
      expect(byVariant[variant].error, variant).toBeUndefined();
      expect(byVariant[variant].edited, variant).toBe(variant !== 'contiguous');
      expect(byVariant[variant].maxAbsError!).toBeLessThan(maxAbsError);
    }
    expect(byVariant.unfused.edited).toBe(true);
    expect(byVariant.unfused.ms!).toBeGreaterThan(0);
    expect(byVariant.unfused.maxAbsError!).toBeGreaterThan(1e-2);
    expect(byVariant.unfused.error).toMatch(/^differs from the CPU reference: max \|error\| \S+, NMSE \S+ \(tolerance 1\.0e-9\)$/);
  });

  it('lists the paged variants a head too wide for workgroup memory rules out, and still runs the contiguous kernel', { timeout: 120_000 }, async () => {
    const wide: AttentionWorkbenchRequest = { op: 'attention', batch: 1, length: 3, nHeads: 1, nKvHeads: 1, headDim: 16384, blockSize: 8, repetitions: 1 };
    const report = await runWorkbench(await testKernels(), probeGBps, wide);
    const [whole, splitK, unfused, contiguous] = report.results;
    for (const [i, r] of [whole, splitK, unfused].entries()) {
      const missing = missingPagedAttentionRequirements(adapter, pagedAttentionVariants[i], shapeOf(wide));
      if (missing.length === 0) continue; // an adapter with 64 KiB of workgroup memory runs unfused
      expect(r).toEqual({ variant: pagedAttentionVariants[i].name, ms: null, gbps: null, gflops: null, fractionOfProbe: null, maxAbsError: null, error: `needs ${missing.join(' and ')}`, edited: false });
    }
    expect(whole.error).toMatch(/^needs \d+ bytes of workgroup storage \(limit \d+\)$/);
    expect(contiguous.error).toBeUndefined();
    expect(contiguous.maxAbsError!).toBeLessThan(maxAbsError);
  });

  it('keys its tolerance to the context and head lengths', () => {
    expect(attentionTolerance(37, 16)).toBe(1e-9);
    expect(attentionTolerance(32768, 128)).toBeCloseTo(100 * (32768 + 128) * 2 ** -48, 20);
  });

  it.each([
    [{ ...request, batch: 0 }, /^batch must be a positive whole number, got 0$/],
    [{ ...request, length: 2.5 }, /^length must be a positive whole number, got 2.5$/],
    [{ ...request, nHeads: NaN }, /^nHeads must be a positive whole number, got NaN$/],
    [{ ...request, nKvHeads: -2 }, /^nKvHeads must be a positive whole number, got -2$/],
    [{ ...request, headDim: 0 }, /^headDim must be a positive whole number, got 0$/],
    [{ ...request, nHeads: 6, nKvHeads: 4 }, /^nHeads 6 is not a multiple of nKvHeads 4$/],
    [{ ...request, blockSize: 12 }, /^KV block size must be one of 8, 16, 32 tokens per page, got 12$/],
    [{ ...request, repetitions: 1001 }, /^repetitions must be a whole number from 1 to 1000, got 1001$/],
    [{ ...request, batch: 64, length: 32768, nHeads: 32, headDim: 128 }, /^64 sequences x 32768 tokens x 32 heads x 128 dims is 8589934592 products; the workbench takes at most 67108864$/],
  ])('refuses %j', async (bad, message) => {
    const error = await runWorkbench(await testKernels(), probeGBps, bad).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RequestError);
    expect((error as Error).message).toMatch(message);
  });

  it('refuses a pool larger than the adapter binds in one buffer', async () => {
    const small = { ...adapter, limits: { ...adapter.limits, maxStorageBufferBindingSize: 1 << 20 } };
    const refused = runWorkbench(new KernelContext({ ...gpu, adapter: small }), probeGBps, { op: 'attention', batch: 4, length: 1024, nHeads: 8, nKvHeads: 8, headDim: 16, blockSize: 16 });
    await expect(refused).rejects.toThrow(RequestError);
    // 4 x 64 pages + 1 spare, each 16 tokens of K and V of 128 floats
    await expect(refused).rejects.toThrow(/^the page pool \(257 pages of 16 tokens\) takes 4210688 bytes; this adapter binds at most 1048576 bytes in one buffer$/);
  });
});

describe('checkShaderEdit', () => {
  const formats = supportedFormats(adapter);
  const checked = formats.flatMap((format) => supportedVariants(adapter, format).map((v) => `${format} ${v.name}`));

  it('offers the matvec family', () => {
    expect(editableFamilies).toContain('matvec');
  });

  it('accepts the shipped source after checking every supported format x variant', { timeout: 120_000 }, async () => {
    const report = await checkShaderEdit(gpu, 'matvec', shaderSources.matvec);
    expect(report.errors).toEqual([]);
    expect(report.accepted).toBe(true);
    expect(report.checks.map((c) => `${c.format} ${c.variant}`)).toEqual(checked);
    for (const c of report.checks) {
      expect(c.ok).toBe(true);
      expect(c.maxAbsError!).toBeLessThan(1e-4);
    }
    expect(gpu.takeUncapturedErrors()).toEqual([]);
  });

  it('rejects a syntax error with the line number of the edited source', async () => {
    // Past the #if blocks at the top, which the preprocessor blanks rather than drops.
    const line = lineOf('var<workgroup> partial');
    expect(line).toBeGreaterThan(lineOf('#endif'));
    const report = await checkShaderEdit(gpu, 'matvec', withLine(line, 'let broken = ;'));
    expect(report.accepted).toBe(false);
    expect(report.checks).toEqual([]);
    expect(report.errors.length).toBeGreaterThan(0);
    // Every configuration hits it, so it is reported once, naming none.
    expect(report.errors[0]).toMatch(new RegExp(`^matvec\\.wgsl:${line}:\\d+: `));
    expect(report.errors[0]).not.toMatch(/\(with /);
  });

  it('names the configurations an error inside one format block breaks', async () => {
    const line = lineOf('sum += dot(vec4<f32>(low) - 8.0');
    const report = await checkShaderEdit(gpu, 'matvec', withLine(line, 'let broken = ;'));
    expect(report.accepted).toBe(false);
    expect(report.errors).toHaveLength(1);
    expect(report.errors[0]).toMatch(new RegExp(`^matvec\\.wgsl:${line}:\\d+: .*\\(with q4_0(\\+SUBGROUPS)?(, q4_0\\+SUBGROUPS)?\\)$`));
  });

  it('rejects an edit that compiles but computes a wrong result, naming the failing checks', { timeout: 120_000 }, async () => {
    // q4_0 levels offset by 7 instead of 8: every q4_0 weight is off by one scale step.
    const line = lineOf('sum += dot(vec4<f32>(low) - 8.0');
    const source = withLine(line, shaderSources.matvec.split('\n')[line - 1].replaceAll('- 8.0', '- 7.0'));
    const report = await checkShaderEdit(gpu, 'matvec', source);
    expect(report.accepted).toBe(false);
    expect(report.checks.map((c) => `${c.format} ${c.variant}`)).toEqual(checked);
    for (const c of report.checks) {
      if (c.format !== 'q4_0') {
        expect(c.ok, `${c.format} ${c.variant}`).toBe(true);
        continue;
      }
      expect(c.ok).toBe(false);
      expect(c.maxAbsError!).toBeGreaterThan(1e-2);
      expect(c.error).toMatch(/^37x172: differs from the CPU reference: max \|error\| .* \(tolerance 1\.0e-10\); 70x95: differs/);
    }
    const q4Variants = supportedVariants(adapter, 'q4_0').map((v) => `q4_0 ${v.name}: 37x172: differs`);
    expect(report.errors.map((e) => e.slice(0, e.indexOf(' from')))).toEqual(q4Variants);
  });

  it('reports a missing entry point as failing checks instead of throwing', { timeout: 120_000 }, async () => {
    const report = await checkShaderEdit(gpu, 'matvec', shaderSources.matvec.replace('fn splitK(', 'fn splitKRenamed('));
    expect(report.accepted).toBe(false);
    for (const c of report.checks) {
      expect(c.ok, `${c.format} ${c.variant}`).toBe(c.variant !== 'splitK');
      if (c.variant === 'splitK') {
        expect(c.maxAbsError).toBeNull();
        // Tried once: a pipeline that cannot be built fails the same at every shape.
        expect(c.error).toMatch(/^37x172: Entry point .*splitK/);
        expect(c.error).not.toMatch(/70x95/);
      }
    }
    expect(report.errors).toHaveLength(formats.length);
    expect(gpu.takeUncapturedErrors()).toEqual([]);
  });

  it('rejects a family it cannot check without throwing', async () => {
    for (const family of ['softmax', 'attention']) {
      const report = await checkShaderEdit(gpu, family, '@compute @workgroup_size(1) fn main() {}');
      expect(report).toEqual({ family, accepted: false, errors: [expect.stringMatching(new RegExp(`^"${family}" is not a kernel family whose edits can be checked \\(editable: matvec\\)`))], checks: [] });
    }
  });
});

describe('matvecTolerance', () => {
  it('is the kernel tests’ 1e-10 for short rows and grows with long ones', () => {
    expect(matvecTolerance(172)).toBe(1e-10);
    expect(matvecTolerance(4096)).toBeCloseTo(100 * 4096 * 2 ** -48, 20);
    expect(matvecTolerance(65536)).toBeGreaterThan(65536 * 2 ** -49);
  });
});
