// Weight formats of the matvec kernels and their GPU-ready packing. unpackMatrix is the CPU
// reference of the kernels: it returns exactly the weights the GPU multiplies with.
//
// Formats:
//   f32         one f32 per weight.
//   f16         two halves per u32 (weight 2k in the low half), read with unpack2x16float: works
//               on every adapter.
//   f16-native  the same bytes read as vec2<f16> (`enable f16;`): needs the 'shader-f16' feature.
//   q8_0        ggml's Q8_0: blocks of 32 int8 levels sharing one f16 scale d; weight = level * d.
//   q4_0        ggml's Q4_0: blocks of 32 4-bit levels sharing one f16 scale d; weight = (level - 8) * d.
//
// Rounding follows ggml's reference quantizers (quantize_row_q8_0_ref / quantize_row_q4_0_ref),
// in f32 arithmetic like the C code, so our blocks are the ones llama.cpp would write:
//   q8_0: d = amax / 127, level = round(x / d) (half away from zero), computed as x * (1 / d).
//   q4_0: m = the weight of largest magnitude (with its sign), d = m / -8,
//         level = min(15, trunc(x * (1 / d) + 8.5)). m maps to level 0 and -m to level 16 -> 15.
//   Both store d as f16 (round to nearest even); a block of zeros gets d = 0.
//
// Tails: a row is zero-padded to `paddedCols` (a multiple of the block: 32 for q8_0/q4_0, 2 for
// f16, 1 for f32) before it is quantized, so stories260K's FFN width 172 becomes 6 blocks of
// which the last holds 12 zeros. Padded weights are exactly 0 and add nothing; the kernels still
// never read x past `cols` (x is not padded: a read past it could be any value, even NaN).
//
// GPU layout of q8_0 / q4_0 in ONE buffer of u32 words:
//   quants  row-major blocks (block b of row r is block r * blocksPerRow + b), 32 bytes (8 words)
//           per q8_0 block, 16 bytes (4 words) per q4_0 block in GGUF's nibble order: byte j holds
//           weight j in its low nibble and weight j + 16 in its high nibble;
//   scales  from word `scalesOffset`: the f16 scale of block g in half g (two per word, low first).
// That is 34 / 18 bytes per 32 weights, as in GGUF (1.0625 and 0.5625 bytes per weight). Both
// regions are multiples of 16 bytes long or end the buffer, and `data` is zero-padded to a whole
// number of 16-byte vectors, so kernels may read the buffer as array<vec4<u32>>.
import { f16BitsToF32, f32ToF16Bits } from './f16.ts';

export type WeightFormat = 'f32' | 'f16' | 'f16-native' | 'q8_0' | 'q4_0';
export const weightFormats: readonly WeightFormat[] = ['f32', 'f16', 'f16-native', 'q8_0', 'q4_0'];

export type QuantFormat = 'q8_0' | 'q4_0';

export interface PackedMatrix {
  format: WeightFormat;
  rows: number;
  cols: number;
  /** Row stride in elements: cols rounded up to the block (32 for q8_0/q4_0, 2 for f16, 1 for f32). */
  paddedCols: number;
  /** GPU-ready words (see the layout above), zero-padded to a multiple of 16 bytes. */
  data: Uint32Array;
  /** Bytes that carry the matrix (weights, scales); `data` may hold up to 12 more bytes of padding. */
  byteLength: number;
}

/** Weights per block of the quantized formats (ggml's QK8_0 = QK4_0 = 32). */
export const quantBlock = 32;

const quantBytesPerBlock: Record<QuantFormat, number> = { q8_0: 32, q4_0: 16 };

export function isQuantized(format: WeightFormat): format is QuantFormat {
  return format === 'q8_0' || format === 'q4_0';
}

/** Elements a row is padded to a multiple of. */
function rowAlignment(format: WeightFormat): number {
  if (isQuantized(format)) return quantBlock;
  return format === 'f32' ? 1 : 2;
}

export function paddedColsOf(format: WeightFormat, cols: number): number {
  const align = rowAlignment(format);
  return Math.ceil(cols / align) * align;
}

/** Bytes per (padded) weight, scales included: 4, 2, 2, 34/32, 18/32. */
export function bytesPerWeight(format: WeightFormat): number {
  if (isQuantized(format)) return (quantBytesPerBlock[format] + 2) / quantBlock;
  return format === 'f32' ? 4 : 2;
}

/** Where the kernels find things in a quantized matrix (units are u32 words). */
export interface QuantLayout {
  blocksPerRow: number;
  wordsPerBlock: number;
  /** Word index of the first f16 scale: the quants region's length. */
  scalesOffset: number;
}

export function quantLayout(format: QuantFormat, rows: number, paddedCols: number): QuantLayout {
  const blocksPerRow = paddedCols / quantBlock;
  const wordsPerBlock = quantBytesPerBlock[format] / 4;
  return { blocksPerRow, wordsPerBlock, scalesOffset: rows * blocksPerRow * wordsPerBlock };
}

/** Bytes that carry a rows x cols matrix in `format` (PackedMatrix.byteLength). */
export function packedByteLength(format: WeightFormat, rows: number, cols: number): number {
  return rows * paddedColsOf(format, cols) * bytesPerWeight(format);
}

function emptyPacked(format: WeightFormat, rows: number, cols: number): PackedMatrix {
  checkShape(rows, cols);
  const byteLength = packedByteLength(format, rows, cols);
  const data = new Uint32Array(Math.ceil(byteLength / 16) * 4);
  return { format, rows, cols, paddedCols: paddedColsOf(format, cols), data, byteLength };
}

function checkShape(rows: number, cols: number): void {
  if (!Number.isInteger(rows) || !Number.isInteger(cols) || rows < 1 || cols < 1) throw new RangeError(`matrix shape ${rows} x ${cols} is not positive whole numbers`);
}

/** Packs a row-major (rows, cols) f32 matrix for the GPU, quantizing as ggml does. */
export function packMatrix(values: Float32Array, rows: number, cols: number, format: WeightFormat): PackedMatrix {
  const m = emptyPacked(format, rows, cols);
  if (values.length !== rows * cols) throw new RangeError(`${values.length} values for a ${rows} x ${cols} matrix`);
  if (format === 'f32') {
    new Float32Array(m.data.buffer).set(values);
    return m;
  }
  if (!isQuantized(format)) {
    const halves = new Uint16Array(m.data.buffer);
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < cols; c++) halves[r * m.paddedCols + c] = f32ToF16Bits(values[r * cols + c]);
    }
    return m;
  }
  const { blocksPerRow, scalesOffset } = quantLayout(format, rows, m.paddedCols);
  const bytes = new Uint8Array(m.data.buffer);
  const scales = new Uint16Array(m.data.buffer, 4 * scalesOffset);
  const quantize = format === 'q8_0' ? quantizeQ8_0Block : quantizeQ4_0Block;
  const blockBytes = quantBytesPerBlock[format];
  const row = new Float32Array(m.paddedCols); // the padded tail stays 0
  for (let r = 0; r < rows; r++) {
    row.set(values.subarray(r * cols, (r + 1) * cols));
    for (let b = 0; b < blocksPerRow; b++) {
      const g = r * blocksPerRow + b;
      scales[g] = quantize(row.subarray(b * quantBlock, (b + 1) * quantBlock), bytes.subarray(g * blockBytes, (g + 1) * blockBytes));
    }
  }
  return m;
}

/** Quantizes 32 weights into 32 int8 levels; returns the f16 bits of the scale. */
function quantizeQ8_0Block(x: Float32Array, out: Uint8Array): number {
  let amax = 0;
  for (const v of x) amax = Math.max(amax, Math.abs(v));
  const d = Math.fround(amax / 127);
  const id = d ? Math.fround(1 / d) : 0;
  for (let j = 0; j < quantBlock; j++) out[j] = roundHalfAway(Math.fround(x[j] * id)) & 0xff;
  return f32ToF16Bits(d);
}

/** Quantizes 32 weights into 16 bytes of nibbles (GGUF order); returns the f16 bits of the scale. */
function quantizeQ4_0Block(x: Float32Array, out: Uint8Array): number {
  let amax = 0;
  let max = 0;
  for (const v of x) {
    if (amax < Math.abs(v)) {
      amax = Math.abs(v);
      max = v;
    }
  }
  const d = Math.fround(max / -8);
  const id = d ? Math.fround(1 / d) : 0;
  // x * id lies in about [-8, 8], so the f32 sum + 8.5 is positive and trunc is floor.
  const level = (v: number) => Math.min(15, Math.trunc(Math.fround(Math.fround(v * id) + 8.5)));
  for (let j = 0; j < quantBlock / 2; j++) out[j] = level(x[j]) | (level(x[j + quantBlock / 2]) << 4);
  return f32ToF16Bits(d);
}

/** C's roundf: nearest integer, halfway cases away from zero. */
function roundHalfAway(v: number): number {
  return Math.sign(v) * Math.floor(Math.abs(v) + 0.5);
}

/** The (rows, cols) weights the kernels compute with: dequantized, tails dropped. */
export function unpackMatrix(m: PackedMatrix): Float32Array {
  const { rows, cols, paddedCols, format } = m;
  const out = new Float32Array(rows * cols);
  if (format === 'f32') {
    out.set(new Float32Array(m.data.buffer, 0, rows * cols));
    return out;
  }
  if (!isQuantized(format)) {
    const halves = new Uint16Array(m.data.buffer);
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < cols; c++) out[r * cols + c] = f16BitsToF32(halves[r * paddedCols + c]);
    }
    return out;
  }
  const { blocksPerRow, scalesOffset } = quantLayout(format, rows, paddedCols);
  const scales = new Uint16Array(m.data.buffer, 4 * scalesOffset);
  const level = quantLevel(format, m.data);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const g = r * blocksPerRow + Math.floor(c / quantBlock);
      out[r * cols + c] = level(g, c % quantBlock) * f16BitsToF32(scales[g]); // exact: |level| <= 128
    }
  }
  return out;
}

/** Signed level of weight j of block g. */
function quantLevel(format: QuantFormat, data: Uint32Array): (g: number, j: number) => number {
  if (format === 'q8_0') {
    const levels = new Int8Array(data.buffer);
    return (g, j) => levels[g * 32 + j];
  }
  const bytes = new Uint8Array(data.buffer);
  return (g, j) => (j < 16 ? bytes[g * 16 + j] & 0xf : bytes[g * 16 + j - 16] >> 4) - 8;
}
