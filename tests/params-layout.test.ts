// The TypeScript field lists that pack uniforms must match the WGSL structs field for field.
import { describe, expect, it } from 'vitest';
import { packParams, stepLayout, type ParamLayout } from '../src/engine/gpu/params.ts';
import { shaderSources, type ShaderFamily } from '../src/engine/gpu/shaders.ts';
import { attentionParams } from '../src/engine/kernels/attention.ts';
import { bandwidthParams } from '../src/engine/kernels/bandwidth.ts';
import { elementwiseParams } from '../src/engine/kernels/elementwise.ts';
import { embeddingParams } from '../src/engine/kernels/embedding.ts';
import { preprocessWgsl } from '../src/engine/gpu/wgsl.ts';
import { matvecDefines, matvecParams, type MatvecVariantName } from '../src/engine/kernels/matvec.ts';
import { weightFormats } from '../src/engine/quant/formats.ts';
import { matmulDefines, matmulParams } from '../src/engine/kernels/matmul.ts';
import { pagedAttentionParams } from '../src/engine/kernels/paged-attention.ts';
import { rmsnormParams } from '../src/engine/kernels/rmsnorm.ts';
import { ropeParams } from '../src/engine/kernels/rope.ts';
import { rowsEmbeddingParams, rowsRmsnormParams, rowsRopeParams, rowsSampleParams } from '../src/engine/kernels/rows.ts';
import { filtersLayout, sampleParams } from '../src/engine/kernels/sample.ts';

function wgslStruct(source: string, name: string): [string, string][] {
  const match = new RegExp(`struct ${name} \\{([^}]*)\\}`).exec(source);
  if (!match) return [];
  return match[1]
    .split('\n')
    .map((line) => line.replace(/\/\/.*/, '').trim())
    .filter(Boolean)
    .map((line) => {
      const [field, type] = line.replace(/,$/, '').split(':').map((s) => s.trim());
      return [field, type];
    });
}

// The families with a ROWS flag (src/engine/kernels/rows.ts), each with its batched layout.
const rowsKernels: [ShaderFamily, ParamLayout][] = [
  ['embedding', rowsEmbeddingParams],
  ['rmsnorm', rowsRmsnormParams],
  ['rope', rowsRopeParams],
  ['sample', rowsSampleParams],
];

/** A family's source as its single-vector kernels compile it (ROWS off where the flag exists). */
function singleVectorSource(family: ShaderFamily): string {
  return rowsKernels.some(([f]) => f === family) ? preprocessWgsl(shaderSources[family], { ROWS: false, ...familyFlags[family] }, family) : shaderSources[family];
}

/** Flags a family has besides ROWS, set so that every struct is in the output. */
const familyFlags: Partial<Record<ShaderFamily, Record<string, boolean>>> = { sample: { FILTERED: true } };

const kernels: [ShaderFamily, ParamLayout][] = [
  ['bandwidth', bandwidthParams],
  ['attention', attentionParams],
  ['elementwise', elementwiseParams],
  ['embedding', embeddingParams],
  ['matmul', matmulParams],
  ['matvec', matvecParams],
  ['paged-attention', pagedAttentionParams],
  ['rmsnorm', rmsnormParams],
  ['rope', ropeParams],
  ['sample', sampleParams],
];


describe('uniform layouts', () => {
  it.each(kernels)('%s Params matches its TypeScript layout', (family, layout) => {
    expect(wgslStruct(singleVectorSource(family), 'Params')).toEqual(layout.map(([n, t]) => [n, t]));
  });

  it.each(rowsKernels)('%s Params with ROWS matches its rows layout', (family, layout) => {
    expect(wgslStruct(preprocessWgsl(shaderSources[family], { ROWS: true, ...familyFlags[family] }, family), 'Params')).toEqual(layout.map(([n, t]) => [n, t]));
  });

  it('sample Filters matches filtersLayout', () => {
    expect(wgslStruct(singleVectorSource('sample'), 'Filters')).toEqual(filtersLayout.map(([n, t]) => [n, t]));
  });

  // matvec is preprocessed per format: every expansion must keep the struct the TypeScript packs.
  it.each(weightFormats)('matvec Params matches for %s weights once preprocessed', (format) => {
    for (const variant of ['naive', 'subgroup'] satisfies MatvecVariantName[]) {
      for (const vec4 of [false, true]) {
        const source = preprocessWgsl(shaderSources.matvec, matvecDefines({ format, variant, vec4 }), 'matvec');
        expect(wgslStruct(source, 'Params')).toEqual(matvecParams.map(([n, t]) => [n, t]));
      }
    }
  });

  it.each(weightFormats)('matmul Params matches for %s weights once preprocessed', (format) => {
    for (const vec4 of [false, true]) {
      const source = preprocessWgsl(shaderSources.matmul, matmulDefines({ format, vec4 }), 'matmul');
      expect(wgslStruct(source, 'Params')).toEqual(matmulParams.map(([n, t]) => [n, t]));
    }
  });

  it.each(Object.keys(shaderSources) as ShaderFamily[])('%s Step (if any) matches stepLayout', (family) => {
    const step = wgslStruct(singleVectorSource(family), 'Step');
    if (step.length > 0) expect(step).toEqual(stepLayout.map(([n, t]) => [n, t]));
  });

  it('packs values in order and refuses non-u32 values', () => {
    const bytes = new DataView(packParams(ropeParams, { qPairs: 1, kvDim: 2, halfHeadDim: 3, cacheOffset: 4 }));
    expect([0, 4, 8, 12].map((o) => bytes.getUint32(o, true))).toEqual([1, 2, 3, 4]);
    expect(() => packParams(matvecParams, { rows: -1, cols: 2, units: 2, scalesOffset: 0, outOffset: 0 })).toThrow(/not a u32/);
    expect(() => packParams(matvecParams, { rows: 1.5, cols: 2, units: 2, scalesOffset: 0, outOffset: 0 })).toThrow(/not a u32/);
  });
});
