// GGUF Q8_0 / Q4_0 tensor bytes -> PackedMatrix, by moving bytes only (no re-quantization, so the
// weights on the GPU are exactly the file's). A GGUF block is the f16 scale followed by its quants
// (34 bytes for Q8_0, 18 for Q4_0); the GPU layout keeps all quants first and the scales after
// them (see formats.ts). Q4_0's nibble order is the same in both.
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
