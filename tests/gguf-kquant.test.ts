// GGUF K-quants, dequantized at load: blocks built byte by byte from ggml's layouts
// (block_q4_K, block_q6_K) and checked against values worked out by hand.
import { describe, expect, it } from 'vitest';
import { ggufTensor, parseGguf } from '../src/engine/model/gguf.ts';
import { dequantizeKQuant } from '../src/engine/quant/gguf-quant.ts';
import { buildGguf } from './helpers/model-files.ts';

/** A Q4_K super-block: d = 1, dmin = 0.5, the given 6-bit (scale, min) per sub-block, and quants. */
function q4KBlock(scaleMins: [number, number][], quants: Uint8Array): Uint8Array {
  const block = new Uint8Array(144);
  block.set([0x00, 0x3c, 0x00, 0x38]); // f16 1.0, f16 0.5
  const s = block.subarray(4, 16);
  scaleMins.forEach(([sc, m], j) => {
    if (j < 4) {
      s[j] |= sc;
      s[j + 4] |= m;
    } else {
      // Low 4 bits in byte j + 4 (scale low nibble, min high nibble), top 2 bits above sub-block j - 4's.
      s[j + 4] = (sc & 0xf) | ((m & 0xf) << 4);
      s[j - 4] |= (sc >> 4) << 6;
      s[j] |= (m >> 4) << 6;
    }
  });
  block.set(quants, 16);
  return block;
}

describe('Q4_K', () => {
  // Sub-blocks 4..7 use the packed high bits: 21 = 0b01_0101 and 34 = 0b10_0010, 63 = all bits.
  const scaleMins: [number, number][] = [[1, 0], [2, 1], [3, 2], [63, 63], [21, 34], [4, 3], [5, 40], [63, 0]];
  // Byte l of each 32-byte run: low nibble l % 16 (sub-block 2k), high nibble 15 - l % 16 (sub-block 2k + 1).
  const quants = Uint8Array.from({ length: 128 }, (_, i) => (i % 16) | ((15 - (i % 16)) << 4));
  const block = q4KBlock(scaleMins, quants);

  it('weight = d * scale * level - dmin * min, sub-block by sub-block', () => {
    const w = dequantizeKQuant(block, 12, 256);
    expect(w[0]).toBe(0); // 1 * 0 - 0
    expect(w[5]).toBe(5); // sub-block 0: 1 * 5 - 0
    expect(w[32 + 5]).toBe(19.5); // sub-block 1: 2 * (15 - 5) - 0.5 * 1
    expect(w[96 + 0]).toBe(945 - 31.5); // sub-block 3: 63 * 15 - 0.5 * 63
    expect(w[128 + 7]).toBe(147 - 17); // sub-block 4: 21 * 7 - 0.5 * 34
    expect(w[192 + 3]).toBe(15 - 20); // sub-block 6: 5 * 3 - 0.5 * 40
    expect(w[224 + 15]).toBe(0); // sub-block 7: 63 * 0 - 0
    for (let j = 0; j < 8; j++) {
      const [sc, m] = scaleMins[j];
      for (let l = 0; l < 32; l++) {
        const level = j % 2 === 0 ? l % 16 : 15 - (l % 16);
        expect(w[32 * j + l], `sub-block ${j} weight ${l}`).toBe(sc * level - 0.5 * m);
      }
    }
  });

  it('a Q4_K tensor in a GGUF loads dequantized, and rows must be whole super-blocks', () => {
    const two = new Uint8Array(288);
    two.set(block);
    two.set(q4KBlock(scaleMins.map(([sc]) => [sc, 0]), quants), 144);
    const gguf = parseGguf(buildGguf({ metadata: [], tensors: [{ name: 'w', shape: [2, 256], type: 12, data: two }] }), 'k.gguf');
    const tensor = ggufTensor(gguf, gguf.tensors.get('w')!);
    expect(tensor.shape).toEqual([2, 256]);
    expect(tensor.sourceDtype).toBe('q4_K');
    expect(tensor.packed).toBeUndefined();
    expect(tensor.data[32 + 5]).toBe(19.5);
    expect(tensor.data[256 + 32 + 5]).toBe(20); // the second row's mins are 0
    const narrow = parseGguf(buildGguf({ metadata: [], tensors: [{ name: 'w', shape: [2, 128], type: 12, data: new Uint8Array(144) }] }), 'k.gguf');
    expect(() => ggufTensor(narrow, narrow.tensors.get('w')!)).toThrow(/tensor w has type 12 \(Q4_K\) with rows of 128 weights; Q4_K needs a multiple of 256/);
  });
});

describe('Q6_K', () => {
  const scales = [1, -2, 3, 4, 5, 6, 7, -8, 9, 10, 11, 12, 13, 14, 15, 16];
  const level = (w: number) => (w * 7) % 64; // the 6-bit level of weight w, 0..63
  // Weight 128h + l + 32i (i = 0..3) of half h: low 4 bits in a nibble of ql, high 2 bits in qh[l].
  const block = new Uint8Array(210);
  for (let h = 0; h < 2; h++) {
    for (let l = 0; l < 32; l++) {
      for (let i = 0; i < 4; i++) {
        const q = level(128 * h + l + 32 * i);
        const at = 64 * h + l + (i % 2) * 32;
        block[at] |= i < 2 ? q & 0xf : (q & 0xf) << 4;
        block[128 + 32 * h + l] |= (q >> 4) << (2 * i);
      }
    }
  }
  block.set(Uint8Array.from(scales, (v) => v & 0xff), 192);
  block.set([0x00, 0x34], 208); // f16 0.25

  it('weight = d * scale * (level - 32), with each sub-block of 16 its own scale', () => {
    const w = dequantizeKQuant(block, 14, 256);
    expect(w[0]).toBe(-8); // level 0, scale 1: 0.25 * 1 * -32
    expect(w[33]).toBe(5.25); // level 231 % 64 = 39, sub-block 2 (scale 3): 0.25 * 3 * 7
    expect(w[16]).toBe(0.25 * -2 * (level(16) - 32)); // sub-block 1 has scale -2
    expect(w[255]).toBe(0.25 * 16 * (level(255) - 32));
    for (let k = 0; k < 256; k++) expect(w[k], `weight ${k}`).toBe(0.25 * scales[Math.floor(k / 16)] * (level(k) - 32));
  });

  it('refuses a byte count that is not whole blocks', () => {
    expect(() => dequantizeKQuant(block.subarray(0, 200), 14, 256)).toThrow(/256 q6_K weights are 210 bytes, got 200/);
  });
});
