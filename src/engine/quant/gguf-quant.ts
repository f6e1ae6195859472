// GGUF block formats. Q8_0 / Q4_0 tensor bytes -> PackedMatrix, by moving bytes only (no re-quantization, so the
// weights on the GPU are exactly the file's). A GGUF block is the f16 scale followed by its quants
// (34 bytes for Q8_0, 18 for Q4_0); the GPU layout keeps all quants first and the scales after
// them (see formats.ts). Q4_0's nibble order is the same in both.
import { f16BitsToF32 } from './f16.ts';
import { quantBlock, quantLayout, type PackedMatrix, type QuantFormat } from './formats.ts';

/** ggml_type numbers of the formats handled here. */
const ggmlQuantTypes: Record<number, QuantFormat> = { 8: 'q8_0', 2: 'q4_0' };

export function packedFromGguf(bytes: Uint8Array, ggmlType: number, rows: number, cols: number): PackedMatrix {
  const format = ggmlQuantTypes[ggmlType];
  if (!format) throw new Error(`ggml type ${ggmlType} is not a block format packedFromGguf handles (Q8_0 = 8, Q4_0 = 2)`);
  // ggml requires a row to be whole blocks, so there is never a tail to pad.
  if (!Number.isInteger(rows) || rows < 1 || !Number.isInteger(cols) || cols < 1 || cols % quantBlock !== 0) {
    throw new RangeError(`a ${format} matrix needs rows >= 1 and cols a multiple of ${quantBlock}, got ${rows} x ${cols}`);
  }
  const { blocksPerRow, wordsPerBlock, scalesOffset } = quantLayout(format, rows, cols);
  const quantBytes = 4 * wordsPerBlock;
  const ggufBlockBytes = 2 + quantBytes;
  const blocks = rows * blocksPerRow;
  if (bytes.length !== blocks * ggufBlockBytes) {
    throw new RangeError(`a ${rows} x ${cols} ${format} tensor is ${blocks * ggufBlockBytes} bytes, got ${bytes.length}`);
  }

  const byteLength = blocks * ggufBlockBytes;
  const data = new Uint32Array(Math.ceil(byteLength / 16) * 4);
  const out = new Uint8Array(data.buffer);
  const scales = 4 * scalesOffset;
  for (let g = 0; g < blocks; g++) {
    const block = g * ggufBlockBytes;
    out[scales + 2 * g] = bytes[block];
    out[scales + 2 * g + 1] = bytes[block + 1];
    out.set(bytes.subarray(block + 2, block + ggufBlockBytes), g * quantBytes);
  }
  return { format, rows, cols, paddedCols: cols, data, byteLength };
}

// ---------------------------------------------------------------------------------------------
// K-quants (Q4_K, Q6_K): dequantized to f32 when the file is loaded, not run natively. Their
// 256-weight super-blocks with 6- or 8-bit sub-block scales have no kernel here; the engine packs
// the f32 values into the chosen weight format (so a Q4_K_M file runs as q4_0, q8_0, f16 or f32).
// Layouts and arithmetic follow ggml's dequantize_row_q4_K / dequantize_row_q6_K, in f32.

/** Weights per K-quant super-block (ggml's QK_K). */
export const kQuantBlock = 256;

/** ggml_type numbers of the K-quants dequantized here, with their super-block sizes in bytes. */
export const kQuantTypes = new Map<number, { name: 'q4_K' | 'q6_K'; blockBytes: number }>([
  [12, { name: 'q4_K', blockBytes: 144 }], // f16 d, f16 dmin, 12 bytes of 6-bit scales and mins, 128 bytes of nibbles
  [14, { name: 'q6_K', blockBytes: 210 }], // 128 bytes low nibbles, 64 bytes high bit pairs, 16 int8 scales, f16 d
]);

/** The f32 weights of `count` values stored as the K-quant `ggmlType` (count a multiple of 256). */
export function dequantizeKQuant(bytes: Uint8Array, ggmlType: number, count: number): Float32Array {
  const type = kQuantTypes.get(ggmlType);
  if (!type) throw new Error(`ggml type ${ggmlType} is not a K-quant dequantizeKQuant handles (Q4_K = 12, Q6_K = 14)`);
  if (!Number.isInteger(count) || count % kQuantBlock !== 0) throw new RangeError(`${type.name} holds whole blocks of ${kQuantBlock} weights, not ${count}`);
  const blocks = count / kQuantBlock;
  if (bytes.length !== blocks * type.blockBytes) throw new RangeError(`${count} ${type.name} weights are ${blocks * type.blockBytes} bytes, got ${bytes.length}`);
  const out = new Float32Array(count);
  const dequantizeBlock = type.name === 'q4_K' ? dequantizeQ4KBlock : dequantizeQ6KBlock;
  for (let b = 0; b < blocks; b++) {
    dequantizeBlock(bytes.subarray(b * type.blockBytes, (b + 1) * type.blockBytes), out.subarray(b * kQuantBlock, (b + 1) * kQuantBlock));
  }
  return out;
}

function f16At(bytes: Uint8Array, offset: number): number {
  return f16BitsToF32(bytes[offset] | (bytes[offset + 1] << 8));
}

/**
 * Q4_K: 8 sub-blocks of 32 weights, each with a 6-bit scale sc and min m: weight = d·sc·q − dmin·m
 * for the 4-bit level q. Sub-blocks 2k and 2k + 1 share 32 bytes of quants (low nibbles, then high).
 */
function dequantizeQ4KBlock(block: Uint8Array, out: Float32Array): void {
  const d = f16At(block, 0);
  const dmin = f16At(block, 2);
  const scales = block.subarray(4, 16);
  const quants = block.subarray(16, 144);
  for (let pair = 0; pair < 4; pair++) {
    const q = quants.subarray(32 * pair, 32 * pair + 32);
    for (let half = 0; half < 2; half++) {
      const [sc, m] = q4KScaleMin(2 * pair + half, scales);
      const scale = Math.fround(d * sc);
      const min = Math.fround(dmin * m);
      for (let l = 0; l < 32; l++) {
        const level = half === 0 ? q[l] & 0xf : q[l] >> 4;
        out[64 * pair + 32 * half + l] = Math.fround(Math.fround(scale * level) - min);
      }
    }
  }
}

/** ggml's get_scale_min_k4: the 6-bit scale and min of sub-block j, packed into 12 bytes. */
function q4KScaleMin(j: number, s: Uint8Array): [scale: number, min: number] {
  if (j < 4) return [s[j] & 63, s[j + 4] & 63];
  return [(s[j + 4] & 0xf) | ((s[j - 4] >> 6) << 4), (s[j + 4] >> 4) | ((s[j] >> 6) << 4)];
}

/**
 * Q6_K: 16 sub-blocks of 16 weights with int8 scales: weight = d·scale·(q − 32) for the 6-bit level
 * q, whose low 4 bits are in `ql` and high 2 bits in `qh`. Each 128-weight half interleaves them:
 * weight l + 32i (i = 0..3) takes nibble (i & 1 ? ql[l + 32] : ql[l]) (low or high by i >> 1) and
 * bits 2i..2i+1 of qh[l].
 */
function dequantizeQ6KBlock(block: Uint8Array, out: Float32Array): void {
  const d = f16At(block, 208);
  const scales = new Int8Array(block.buffer, block.byteOffset + 192, 16);
  for (let half = 0; half < 2; half++) {
    const ql = block.subarray(64 * half, 64 * half + 64);
    const qh = block.subarray(128 + 32 * half, 128 + 32 * half + 32);
    const sc = scales.subarray(8 * half, 8 * half + 8);
    for (let l = 0; l < 32; l++) {
      const sub = Math.floor(l / 16);
      const levels = [
        ((ql[l] & 0xf) | (((qh[l] >> 0) & 3) << 4)) - 32,
        ((ql[l + 32] & 0xf) | (((qh[l] >> 2) & 3) << 4)) - 32,
        ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32,
        ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32,
      ];
      levels.forEach((q, i) => {
        out[128 * half + l + 32 * i] = Math.fround(Math.fround(d * sc[sub + 2 * i]) * q);
      });
    }
  }
}
