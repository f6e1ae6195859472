// RoPE's rotation speed per pair, shared by the CPU reference (reference/ops.ts) and the GPU's
// precomputed table (kernels/rope.ts), so a scaled model rotates the same way in both.
import type { RopeScaling } from './types.ts';

/**
 * The angle per position of each pair i in 0..headDim/2-1: theta^(-2i / headDim), adjusted by
 * Llama 3's rule when `scaling` is given (transformers' _compute_llama3_parameters): a pair whose
 * wavelength 2π / f is longer than originalMaxPositionEmbeddings / lowFreqFactor turns `factor`
 * times slower, one shorter than originalMaxPositionEmbeddings / highFreqFactor is unchanged, and
 * in between the two are blended by where the wavelength falls.
 */
export function ropeInverseFrequencies(headDim: number, theta: number, scaling?: RopeScaling): Float64Array {
  const half = headDim / 2;
  const frequencies = new Float64Array(half);
  for (let i = 0; i < half; i++) frequencies[i] = theta ** ((-2 * i) / headDim);
  if (!scaling) return frequencies;

  const { factor, lowFreqFactor, highFreqFactor, originalMaxPositionEmbeddings: context } = scaling;
  const lowFrequencyWavelength = context / lowFreqFactor; // longer than this: fully stretched
  const highFrequencyWavelength = context / highFreqFactor; // shorter than this: untouched
  for (let i = 0; i < half; i++) {
    const f = frequencies[i];
    const wavelength = (2 * Math.PI) / f;
    if (wavelength > lowFrequencyWavelength) {
      frequencies[i] = f / factor;
    } else if (wavelength >= highFrequencyWavelength) {
      const smooth = (context / wavelength - lowFreqFactor) / (highFreqFactor - lowFreqFactor);
      frequencies[i] = (1 - smooth) * (f / factor) + smooth * f;
    }
  }
  return frequencies;
}
