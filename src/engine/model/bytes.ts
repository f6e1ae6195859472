// Bounds-checked little-endian reading and tensor dtype decoding shared by the file-format loaders.
// Every read checks its length first, so a truncated or lying file gives a ModelFormatError that
// names the file and the numbers, never a RangeError or a read past the end of a buffer.
//
// Tensor data is copied into fresh Float32Arrays with the platform's byte order; every platform
// that runs WebGPU is little-endian, like the files.

import { ModelFormatError } from '../errors.ts';
import type { FloatDtype } from './types.ts';

export class ByteReader {
  /** Position of the next read, in bytes from the start of `bytes`. */
  offset = 0;
  readonly view: DataView;

  constructor(
    readonly bytes: Uint8Array,
    /** The file's name for error messages (FileSource.describe). */
    readonly file: string,
  ) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  fail(problem: string): never {
    throw new ModelFormatError(this.file, problem);
  }

  /** Throws unless `count` more bytes can be read; `what` names them in the message. */
  need(count: number, what: string): void {
    if (this.offset + count > this.bytes.length) {
      this.fail(
        `file is ${this.bytes.length} bytes but ${what} at byte ${this.offset} needs ${count} bytes ` +
          `(${this.offset + count - this.bytes.length} past the end)`,
      );
    }
  }

  u32(what: string): number {
    this.need(4, what);
    const value = this.view.getUint32(this.offset, true);
    this.offset += 4;
    return value;
  }

  i32(what: string): number {
    this.need(4, what);
    const value = this.view.getInt32(this.offset, true);
    this.offset += 4;
    return value;
  }

  /** A u64 length or offset; anything past 2^53 cannot be a real size in a file we can hold. */
  u64(what: string): number {
    this.need(8, what);
    const value = this.view.getBigUint64(this.offset, true);
    this.offset += 8;
    if (value > BigInt(Number.MAX_SAFE_INTEGER)) this.fail(`${what} is ${value}, far larger than any file`);
    return Number(value);
  }

  /** The next `count` bytes as a view (no copy). */
  take(count: number, what: string): Uint8Array {
    this.need(count, what);
    const slice = this.bytes.subarray(this.offset, this.offset + count);
    this.offset += count;
    return slice;
  }
}

/** Bytes per element of each dtype a tensor may be stored in. */
export const dtypeBytes: Record<FloatDtype, number> = { f32: 4, f16: 2, bf16: 2 };

/** Decodes little-endian tensor bytes to f32 (length must be a multiple of the dtype size). */
export function decodeTensorData(bytes: Uint8Array, dtype: FloatDtype): Float32Array {
  switch (dtype) {
    case 'f32':
      return decodeF32(bytes);
    case 'f16':
      return decodeF16(bytes);
    case 'bf16':
      return decodeBf16(bytes);
  }
}

function decodeF32(bytes: Uint8Array): Float32Array {
  // Copy rather than view: the source offset need not be 4-byte aligned, and the tensor
  // should not keep the whole file alive.
  const out = new Float32Array(bytes.length / 4);
  new Uint8Array(out.buffer).set(bytes);
  return out;
}

function decodeBf16(bytes: Uint8Array): Float32Array {
  // bf16 is the top half of an f32, so widening is exact: shift the bits into place.
  const bits = new Uint32Array(bytes.length / 2);
  for (let i = 0; i < bits.length; i++) bits[i] = (bytes[2 * i] | (bytes[2 * i + 1] << 8)) << 16;
  return new Float32Array(bits.buffer);
}

function decodeF16(bytes: Uint8Array): Float32Array {
  const table = f16Table();
  const out = new Float32Array(bytes.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = table[bytes[2 * i] | (bytes[2 * i + 1] << 8)];
  return out;
}

// All 65,536 f16 values, built on first use: a table lookup is the fastest exact widening.
let f16Values: Float32Array | undefined;

function f16Table(): Float32Array {
  if (!f16Values) {
    f16Values = new Float32Array(65536);
    for (let bits = 0; bits < 65536; bits++) f16Values[bits] = f16BitsToNumber(bits);
  }
  return f16Values;
}

/** IEEE 754 binary16: 1 sign bit, 5 exponent bits (bias 15), 10 fraction bits. */
function f16BitsToNumber(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const fraction = bits & 0x3ff;
  if (exponent === 0) return sign * fraction * 2 ** -24; // zero and subnormals
  if (exponent === 0x1f) return fraction ? NaN : sign * Infinity;
  return sign * (1 + fraction / 1024) * 2 ** (exponent - 15);
}

/** Product of a shape's dimensions (1 for a scalar). */
export function elementCount(shape: readonly number[]): number {
  return shape.reduce((count, dim) => count * dim, 1);
}
