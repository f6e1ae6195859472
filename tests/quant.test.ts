// Weight packing on the CPU: f16 rounding against known bit patterns and an exhaustive nearest-value
// search, q8_0 / q4_0 against a straightforward re-statement of ggml's reference quantizers (bit
// for bit), row tails, and GGUF blocks re-laid out without re-quantizing.
import { describe, expect, it } from 'vitest';
import { f16BitsToF32, f32ToF16Bits } from '../src/engine/quant/f16.ts';
import { bytesPerWeight, packMatrix, unpackMatrix, weightFormats, type QuantFormat } from '../src/engine/quant/formats.ts';
import { packedFromGguf } from '../src/engine/quant/gguf-quant.ts';
import { seededRandom } from './helpers/gpu.ts';

const f32 = Math.fround;

describe('f16 conversion', () => {
  it.each([
    [1, 0x3c00],
    [-2, 0xc000],
    [0.1, 0x2e66],
    [65504, 0x7bff], // largest finite
    [65519.99, 0x7bff], // just below the midpoint to inf
    [65520, 0x7c00], // the midpoint: ties to even, which is inf
    [1e6, 0x7c00],
    [-1e6, 0xfc00],
    [1 + 2 ** -11, 0x3c00], // tie between 0x3c00 and 0x3c01: even
    [1 + 3 * 2 ** -11, 0x3c02], // tie between 0x3c01 and 0x3c02: even
    [1 + 2 ** -11 + 2 ** -20, 0x3c01], // just above the tie
    [2 ** -14, 0x0400], // smallest normal
    [2 ** -24, 0x0001], // smallest subnormal
    [1023 * 2 ** -24, 0x03ff], // largest subnormal
    [2 ** -14 - 2 ** -25, 0x0400], // tie between the largest subnormal and the smallest normal: even
    [2 ** -25, 0x0000], // tie between 0 and the smallest subnormal: even
    [2 ** -25 * 1.5, 0x0001],
    [3 * 2 ** -25, 0x0002], // tie between 1 and 2 subnormal steps: even
    [5 * 2 ** -25, 0x0002], // tie between 2 and 3: even
    [2 ** -26, 0x0000],
    [1e-40, 0x0000], // an f32 subnormal
    [-0, 0x8000],
    [Infinity, 0x7c00],
    [-Infinity, 0xfc00],
  ])('%d -> 0x%s', (value, bits) => {
    expect(f32ToF16Bits(value).toString(16)).toBe(bits.toString(16));
  });

  it('keeps NaN a NaN', () => {
    const bits = f32ToF16Bits(NaN);
    expect(bits & 0x7c00).toBe(0x7c00);
    expect(bits & 0x3ff).not.toBe(0);
    expect(f16BitsToF32(bits)).toBeNaN();
  });

  it('widens every finite pattern exactly and round-trips it', () => {
    for (let bits = 0; bits < 0x10000; bits++) {
      if ((bits & 0x7c00) === 0x7c00) continue;
      expect(f32ToF16Bits(f16BitsToF32(bits))).toBe(bits);
    }
    expect(f16BitsToF32(0x3555)).toBe(0.333251953125);
    expect(f16BitsToF32(0x0001)).toBe(2 ** -24);
    expect(f16BitsToF32(0x7c00)).toBe(Infinity);
  });

  it('rounds random f32 values to the nearest f16, ties to even', () => {
    // Reference: binary search over the sorted finite non-negative f16 values.
    const values = Float64Array.from({ length: 0x7c00 }, (_, bits) => f16BitsToF32(bits));
    const nearest = (v: number): number => {
      const a = Math.abs(v);
      if (a >= 65520) return 0x7c00;
      let lo = 0;
      let hi = values.length - 1;
      while (hi - lo > 1) {
        const mid = (lo + hi) >> 1;
        if (values[mid] <= a) lo = mid;
        else hi = mid;
      }
      const dLo = a - values[lo];
      const dHi = values[hi] - a;
      return dLo < dHi || (dLo === dHi && lo % 2 === 0) ? lo : hi;
    };
    const rand = seededRandom(7);
    for (const scale of [1e-6, 1e-4, 1, 100, 60000]) {
      for (const v of rand(2000, scale)) {
        expect(f32ToF16Bits(v)).toBe((v < 0 || Object.is(v, -0) ? 0x8000 : 0) | nearest(v));
      }
    }
  });
});

// ggml's reference quantizers restated one weight at a time, in f32 arithmetic.
interface Block {
  d: number; // f16 bits
  levels: number[]; // stored values: int8 for q8_0, 0..15 for q4_0
}

function referenceBlocks(format: QuantFormat, values: Float32Array, rows: number, cols: number): Block[] {
  const blocks: Block[] = [];
  const blocksPerRow = Math.ceil(cols / 32);
  for (let r = 0; r < rows; r++) {
    for (let b = 0; b < blocksPerRow; b++) {
      const x = Array.from({ length: 32 }, (_, j) => (b * 32 + j < cols ? values[r * cols + b * 32 + j] : 0));
      let amax = 0;
      let max = 0;
      for (const v of x) {
        if (Math.abs(v) > amax) {
          amax = Math.abs(v);
          max = v;
        }
      }
      if (format === 'q8_0') {
        const d = f32(amax / 127);
        const id = d === 0 ? 0 : f32(1 / d);
        const levels = x.map((v) => {
          const scaled = f32(v * id);
          // roundf (halves away from zero) stored in an int8, which has no -0
          return (scaled < 0 ? -Math.round(-scaled) : Math.round(scaled)) | 0;
        });
        blocks.push({ d: f32ToF16Bits(d), levels });
      } else {
        const d = f32(max / -8);
        const id = d === 0 ? 0 : f32(1 / d);
        blocks.push({ d: f32ToF16Bits(d), levels: x.map((v) => Math.min(15, Math.trunc(f32(f32(v * id) + 8.5)))) });
      }
    }
  }
  return blocks;
}

function dequantize(format: QuantFormat, blocks: Block[], rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  const blocksPerRow = Math.ceil(cols / 32);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const block = blocks[r * blocksPerRow + Math.floor(c / 32)];
      const level = block.levels[c % 32] - (format === 'q4_0' ? 8 : 0);
      out[r * cols + c] = level * f16BitsToF32(block.d);
    }
  }
  return out;
}

/** GGUF's on-disk blocks: f16 d, then 32 int8s (Q8_0) or 16 nibble pairs (Q4_0). */
function ggufBytes(format: QuantFormat, blocks: Block[]): Uint8Array {
  const size = format === 'q8_0' ? 34 : 18;
  const out = new Uint8Array(blocks.length * size);
  blocks.forEach((block, g) => {
    out[g * size] = block.d & 0xff;
    out[g * size + 1] = block.d >> 8;
    for (let j = 0; j < size - 2; j++) {
      out[g * size + 2 + j] = format === 'q8_0' ? block.levels[j] & 0xff : block.levels[j] | (block.levels[j + 16] << 4);
    }
  });
  return out;
}

const bits = (a: Float32Array) => Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length));

describe.each(['q8_0', 'q4_0'] as const)('%s', (format) => {
  it.each([
    [4, 64],
    [3, 172], // stories260K's FFN width: 5 whole blocks and a tail of 12
    [5, 8],
    [2, 1],
  ])('%i x %i dequantizes bit for bit like the reference quantizer', (rows, cols) => {
    const values = seededRandom(rows * 100 + cols)(rows * cols, 2);
    values[0] = 0.75; // an exact level
    const m = packMatrix(values, rows, cols, format);
    expect(m.paddedCols).toBe(Math.ceil(cols / 32) * 32);
    expect(m.byteLength).toBe(rows * m.paddedCols * bytesPerWeight(format));
    expect(m.data.byteLength % 16).toBe(0);
    expect(bits(unpackMatrix(m))).toEqual(bits(dequantize(format, referenceBlocks(format, values, rows, cols), rows, cols)));
  });

  it('stays within the error bound of the format for every weight', () => {
    // Half a step, plus the scale's f16 rounding (2^-11 relative) times the level; q4_0's
    // asymmetric range clamps the extreme opposite the block maximum by a whole step.
    const bound = format === 'q8_0' ? 0.5 + 127 * 2 ** -11 : 1 + 8 * 2 ** -11;
    const values = seededRandom(3)(32 * 8, 1);
    const blocks = referenceBlocks(format, values, 8, 32);
    const weights = unpackMatrix(packMatrix(values, 8, 32, format));
    values.forEach((v, i) => {
      const d = Math.abs(f16BitsToF32(blocks[Math.floor(i / 32)].d));
      expect(Math.abs(weights[i] - v)).toBeLessThanOrEqual(bound * d);
    });
  });

  it('quantizes an all-zero block to zeros', () => {
    expect(Array.from(unpackMatrix(packMatrix(new Float32Array(40), 1, 40, format))).every((w) => w === 0)).toBe(true);
  });

  it('a GGUF tensor re-lays out into exactly what packMatrix builds', () => {
    const rows = 3;
    const cols = 96;
    const values = seededRandom(11)(rows * cols, 0.5);
    const gguf = ggufBytes(format, referenceBlocks(format, values, rows, cols));
    const fromGguf = packedFromGguf(gguf, format === 'q8_0' ? 8 : 2, rows, cols);
    expect(fromGguf).toEqual(packMatrix(values, rows, cols, format));
    expect(fromGguf.byteLength).toBe(gguf.length);
  });

  it('refuses GGUF bytes of the wrong size or rows that are not whole blocks', () => {
    const type = format === 'q8_0' ? 8 : 2;
    expect(() => packedFromGguf(new Uint8Array(10), type, 1, 32)).toThrow(/bytes/);
    expect(() => packedFromGguf(new Uint8Array(34), type, 1, 31)).toThrow(/multiple of 32/);
  });
});

describe('q4_0 levels', () => {
  it('maps the largest-magnitude weight to -8 steps and stores GGUF nibble order', () => {
    const x = new Float32Array(32);
    x[0] = 1;
    x[1] = -2; // the largest magnitude, negative: d = -2 / -8 = 0.25
    x[16] = 2; // the opposite extreme clamps to level 15, i.e. +7 steps
    x[17] = 0.3; // 1.2 steps + 8.5 = 9.7 -> level 9
    const m = packMatrix(x, 1, 32, 'q4_0');
    const bytes = new Uint8Array(m.data.buffer);
    expect(bytes[0]).toBe(12 | (15 << 4)); // weight 0 low nibble, weight 16 high nibble
    expect(bytes[1]).toBe(0 | (9 << 4));
    expect(Array.from(unpackMatrix(m).subarray(0, 2))).toEqual([1, -2]);
    expect(unpackMatrix(m)[16]).toBe(1.75);
  });
});

describe('f16 and f32 packing', () => {
  it.each([
    [2, 5],
    [3, 172],
    [1, 1],
  ])('%i x %i pads f16 rows to an even length and unpacks the rounded halves', (rows, cols) => {
    const values = seededRandom(rows + cols)(rows * cols, 3);
    for (const format of ['f16', 'f16-native'] as const) {
      const m = packMatrix(values, rows, cols, format);
      expect(m.paddedCols).toBe(cols + (cols % 2));
      expect(m.byteLength).toBe(2 * rows * m.paddedCols);
      expect(Array.from(unpackMatrix(m))).toEqual(Array.from(values, (v) => f16BitsToF32(f32ToF16Bits(v))));
      const halves = new Uint16Array(m.data.buffer);
      if (cols % 2 === 1) expect(halves[cols]).toBe(0); // the padding half
    }
  });

  it('f32 is the values themselves', () => {
    const values = seededRandom(1)(15);
    const m = packMatrix(values, 3, 5, 'f32');
    expect(m.paddedCols).toBe(5);
    expect(m.byteLength).toBe(60);
    expect(unpackMatrix(m)).toEqual(values);
  });

  it('reports bytes per weight as GGUF does', () => {
    expect(weightFormats.map(bytesPerWeight)).toEqual([4, 2, 2, 1.0625, 0.5625]);
  });

  it('refuses a value count that does not match the shape', () => {
    expect(() => packMatrix(new Float32Array(5), 2, 3, 'q8_0')).toThrow(/6|2 x 3/);
  });
});
