// KV memory accounting for the lab's KV-cache panel: how many bytes each way of laying out the
// cache sets aside for a batch of sequences, how many of those hold K/V of tokens that exist, and
// how many sequences a memory budget admits.
//
// contiguous: every sequence reserves the whole context up front (what runtime/gpu-model.ts does
//             for its single sequence), so a short sequence wastes almost all of its reservation.
// paged:      a sequence holds ceil(length / blockSize) pages (page-pool.ts), so at most
//             blockSize - 1 token slots per sequence are waste.
// Pages shared between sequences (forks, prefix cache) are counted once per sequence here; the
// pool's snapshot() shows the actual sharing.
import { RequestError } from '../errors.ts';
import { checkBlockSize, kvBytesPerToken, type KvShape } from './page-pool.ts';

export type KvMemoryMode = 'contiguous' | 'paged';

export interface KvSequenceMemory {
  /** Tokens whose K/V the sequence holds. */
  length: number;
  reservedBytes: number;
  liveBytes: number;
}

export interface KvMemoryReport {
  mode: KvMemoryMode;
  /** Bytes set aside for the sequences. */
  reservedBytes: number;
  /** Bytes holding K/V of existing tokens. */
  liveBytes: number;
  /** reservedBytes - liveBytes. */
  wasteBytes: number;
  sequences: KvSequenceMemory[];
}

function checkContextLength(contextLength: number): void {
  if (!Number.isInteger(contextLength) || contextLength < 1) throw new RequestError(`context length must be a positive whole number, got ${contextLength}`);
}

/** Token slots a sequence of `length` tokens reserves in `mode`. */
function reservedTokens(length: number, contextLength: number, mode: KvMemoryMode, blockSize: number): number {
  return mode === 'contiguous' ? contextLength : Math.ceil(length / blockSize) * blockSize;
}

/**
 * Reserved and live KV bytes for sequences of the given lengths. `blockSize` (tokens per page) is
 * checked and used in paged mode only.
 */
export function kvMemoryReport(lengths: readonly number[], config: KvShape, contextLength: number, mode: KvMemoryMode, blockSize: number): KvMemoryReport {
  checkContextLength(contextLength);
  if (mode === 'paged') checkBlockSize(blockSize);
  const bytesPerToken = kvBytesPerToken(config);
  const sequences = lengths.map((length): KvSequenceMemory => {
    if (!Number.isInteger(length) || length < 0 || length > contextLength) {
      throw new RequestError(`sequence length ${length} is outside the context of ${contextLength} tokens`);
    }
    return { length, reservedBytes: reservedTokens(length, contextLength, mode, blockSize) * bytesPerToken, liveBytes: length * bytesPerToken };
  });
  const reservedBytes = sequences.reduce((sum, s) => sum + s.reservedBytes, 0);
  const liveBytes = sequences.reduce((sum, s) => sum + s.liveBytes, 0);
  return { mode, reservedBytes, liveBytes, wasteBytes: reservedBytes - liveBytes, sequences };
}

/**
 * How many sequences `memoryBytes` of KV memory holds at once, as if every sequence were
 * `averageLength` tokens long (contiguous mode reserves the full context whatever the length).
 */
export function sequencesThatFit(
  memoryBytes: number,
  config: KvShape,
  contextLength: number,
  mode: KvMemoryMode,
  blockSize: number,
  averageLength: number,
): number {
  checkContextLength(contextLength);
  if (mode === 'paged') checkBlockSize(blockSize);
  if (!(memoryBytes >= 0)) throw new RequestError(`KV memory must be >= 0 bytes, got ${memoryBytes}`);
  if (!(averageLength > 0 && averageLength <= contextLength)) {
    throw new RequestError(`average sequence length must be in (0, ${contextLength}], got ${averageLength}`);
  }
  return Math.floor(memoryBytes / (reservedTokens(averageLength, contextLength, mode, blockSize) * kvBytesPerToken(config)));
}
