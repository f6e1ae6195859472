// IEEE 754 binary16 <-> binary32 conversion for packing weights and block scales.
// Narrowing (f32 -> f16) rounds to nearest, ties to even, like the hardware conversions that
// ggml's GGML_FP32_TO_FP16 and WGSL's pack2x16float use; widening is exact and reuses the
// model loader's f16 decoder (model/bytes.ts) so the project has one f16 decoding.
import { decodeTensorData } from '../model/bytes.ts';

const f32 = new Float32Array(1);
const f32Bits = new Uint32Array(f32.buffer);

/** The f16 bit pattern nearest to `value` after rounding it to f32 (ties to even; NaN stays NaN). */
export function f32ToF16Bits(value: number): number {
  f32[0] = value;
  const bits = f32Bits[0];
  const sign = (bits >>> 16) & 0x8000;
  const exponent = (bits >>> 23) & 0xff;
  const mantissa = bits & 0x7fffff;

  if (exponent === 0xff) return sign | 0x7c00 | (mantissa ? 0x200 | (mantissa >>> 13) : 0); // inf, quiet NaN
  const e = exponent - 127 + 15; // the exponent re-biased for f16
  if (e >= 0x1f) return sign | 0x7c00; // too large even before rounding: inf

  if (e <= 0) {
    // f16 subnormal: value = q * 2^-24 with q = significand >> (14 - e). Below half the smallest
    // subnormal (2^-25, a shift past 24 bits) everything rounds to zero; f32 subnormals land here too.
    const shift = 14 - e;
    if (shift > 24) return sign;
    return sign | roundShift(mantissa | 0x800000, shift);
  }
  // Normal: drop 13 mantissa bits. A carry out of the mantissa correctly bumps the exponent,
  // and out of the largest finite value (65504) into inf.
  return sign | roundShift((e << 23) | mantissa, 13);
}

/** `value >> shift`, rounded to nearest with ties to even. */
function roundShift(value: number, shift: number): number {
  const half = 1 << (shift - 1);
  const rest = value & ((1 << shift) - 1);
  const kept = value >>> shift;
  return rest > half || (rest === half && (kept & 1) === 1) ? kept + 1 : kept;
}

let widened: Float32Array | undefined;

/** The f32 value of an f16 bit pattern (exact). */
export function f16BitsToF32(bits: number): number {
  // All 65,536 patterns decoded once by the loader's decoder: a lookup is the fastest exact widening.
  widened ??= decodeTensorData(new Uint8Array(Uint16Array.from({ length: 65536 }, (_, i) => i).buffer), 'f16');
  return widened[bits & 0xffff];
}
