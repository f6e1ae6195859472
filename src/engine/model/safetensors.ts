// safetensors: u64 little-endian header length N, N bytes of JSON, then the data section.
// The JSON maps each tensor name to { dtype, shape, data_offsets: [begin, end] } (byte offsets
// relative to the data section) plus an optional "__metadata__" map of strings.
// Every range is checked when the file is parsed, so decoding a tensor later cannot go out of bounds.

import { ModelFormatError } from '../errors.ts';
import { ByteReader, decodeTensorData, elementCount } from './bytes.ts';
import type { FloatDtype, Tensor } from './types.ts';

export interface SafetensorsTensorInfo {
  name: string;
  /** The file's dtype string: F32, F16, BF16, I64, ... */
  dtype: string;
  shape: number[];
  /** Byte range inside the data section. */
  begin: number;
  end: number;
}

export interface SafetensorsFile {
  /** The file's name for error messages. */
  file: string;
  tensors: Map<string, SafetensorsTensorInfo>;
  metadata: Record<string, string>;
  /** Everything after the JSON header. */
  data: Uint8Array;
}

/** Element sizes of the dtypes the format defines (so any file's ranges can be checked). */
const dtypeSizes: Record<string, number> = {
  BOOL: 1, U8: 1, I8: 1, F8_E5M2: 1, F8_E4M3: 1,
  I16: 2, U16: 2, F16: 2, BF16: 2,
  I32: 4, U32: 4, F32: 4,
  I64: 8, U64: 8, F64: 8,
};

/** The dtypes we decode to f32. */
const decodableDtypes: Record<string, FloatDtype> = { F32: 'f32', F16: 'f16', BF16: 'bf16' };

export function parseSafetensors(bytes: Uint8Array, file: string): SafetensorsFile {
  const reader = new ByteReader(bytes, file);
  const headerLength = reader.u64('the header length');
  if (8 + headerLength > bytes.length) {
    reader.fail(`header length ${headerLength} runs past the end of the ${bytes.length}-byte file (truncated, or not safetensors)`);
  }
  const header = parseHeaderJson(reader.take(headerLength, 'the JSON header'), reader);
  const data = bytes.subarray(reader.offset);

  const tensors = new Map<string, SafetensorsTensorInfo>();
  let metadata: Record<string, string> = {};
  for (const [name, entry] of Object.entries(header)) {
    if (name === '__metadata__') metadata = entry as Record<string, string>;
    else tensors.set(name, checkEntry(name, entry, data.length, reader));
  }
  checkNoOverlap([...tensors.values()], reader);
  return { file, tensors, metadata, data };
}

function parseHeaderJson(headerBytes: Uint8Array, reader: ByteReader): Record<string, unknown> {
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder().decode(headerBytes));
  } catch (error) {
    reader.fail(`header (${headerBytes.length} bytes) is not valid JSON: ${(error as Error).message}`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) reader.fail('header JSON is not an object');
  return header as Record<string, unknown>;
}

function checkEntry(name: string, entry: unknown, dataLength: number, reader: ByteReader): SafetensorsTensorInfo {
  const { dtype, shape, data_offsets: offsets } = (entry ?? {}) as Record<string, unknown>;
  if (typeof dtype !== 'string' || !(dtype in dtypeSizes)) reader.fail(`tensor ${name} has unknown dtype ${JSON.stringify(dtype)}`);
  if (!isIntegerArray(shape)) reader.fail(`tensor ${name} shape ${JSON.stringify(shape)} is not a list of non-negative integers`);
  if (!isIntegerArray(offsets) || offsets.length !== 2) {
    reader.fail(`tensor ${name} data_offsets ${JSON.stringify(offsets)} is not a [begin, end] pair`);
  }
  const [begin, end] = offsets;
  if (begin > end || end > dataLength) {
    reader.fail(`tensor ${name} data_offsets [${begin}, ${end}] lie outside the ${dataLength}-byte data section`);
  }
  const size = elementCount(shape) * dtypeSizes[dtype];
  if (end - begin !== size) {
    reader.fail(`tensor ${name} has ${end - begin} bytes but its shape [${shape.join(', ')}] of ${dtype} needs ${size}`);
  }
  return { name, dtype, shape, begin, end };
}

function isIntegerArray(value: unknown): value is number[] {
  return Array.isArray(value) && value.every((v) => Number.isSafeInteger(v) && v >= 0);
}

function checkNoOverlap(infos: SafetensorsTensorInfo[], reader: ByteReader): void {
  const sorted = infos.filter((t) => t.end > t.begin).sort((a, b) => a.begin - b.begin);
  for (let i = 1; i < sorted.length; i++) {
    const [previous, current] = [sorted[i - 1], sorted[i]];
    if (current.begin < previous.end) {
      reader.fail(
        `tensors ${previous.name} [${previous.begin}, ${previous.end}] and ${current.name} ` +
          `[${current.begin}, ${current.end}] overlap`,
      );
    }
  }
}

/** Decodes one tensor to f32 (F32, F16 and BF16; other dtypes are an error naming the tensor). */
export function safetensorsTensor(st: SafetensorsFile, name: string): Tensor {
  const info = st.tensors.get(name);
  if (!info) throw new ModelFormatError(st.file, `tensor ${name} is missing`);
  const dtype = decodableDtypes[info.dtype];
  if (!dtype) throw new ModelFormatError(st.file, `tensor ${name} has dtype ${info.dtype}; only F32, F16 and BF16 are supported`);
  return { shape: info.shape, sourceDtype: dtype, data: decodeTensorData(st.data.subarray(info.begin, info.end), dtype) };
}
