// The sort-based filtered sampler: a bitonic sort of the vocabulary's (key, id) pairs, then one
// workgroup that reads the top-k and top-p cuts off the sorted list and draws the token that
// kernels/sample.ts's threshold-search sampler draws. See shaders/sample-sort.wgsl.
import { grid, type Cost, type Dispatch, type KernelContext } from '../gpu/kernel.ts';
import type { ParamLayout } from '../gpu/params.ts';
import type { FilteredSampleBuffers } from './sample.ts';

export const sampleSortParams = [
  ['vocab', 'u32'],
  ['size', 'u32'],
  ['stage', 'u32'],
  ['stride', 'u32'],
] as const satisfies ParamLayout;

/** Pairs one workgroup sorts in its memory (BLOCK in the shader). */
export const sortBlock = 512;

/** Length of the sorted list for a vocabulary: the next power of two, at least one block. */
export function sortedLength(vocab: number): number {
  return Math.max(sortBlock, 2 ** Math.ceil(Math.log2(vocab)));
}

export interface SortedSampleBuffers extends FilteredSampleBuffers {
  /** (sortedLength(vocab)) u32 sorted keys. */
  keys: GPUBuffer;
  /** (sortedLength(vocab)) u32 their token ids. */
  ids: GPUBuffer;
}

/** A pass that reads and writes every (key, id) pair of the list once. */
function sortPassCost(size: number, compareSteps: number): Cost {
  return { bytesRead: 8 * size, bytesWritten: 8 * size, flops: (size / 2) * compareSteps };
}

/**
 * Passes of pick over the vocabulary in id order (4-byte logits each) with top-p on: the top-k mass,
 * the two confirming sums, the kept mass and on average half a pass to draw, plus one pass over the
 * kept part of the sorted keys (counted as the whole list: top-k off keeps every valid key).
 */
const pickPasses = 4.5;

export function pickCost(vocab: number): Cost {
  return { bytesRead: 4 * vocab * pickPasses + 4 * sortedLength(vocab), bytesWritten: 4, flops: 3 * vocab * pickPasses };
}

/**
 * The dispatches of one sampled step, in order: sortLocal (the keys, and every stage within a
 * block), then for each wider stage its global steps (stride >= a block) and one mergeLocal, then
 * pick. Each carries its own (stage, stride) params, so a step only re-encodes the list.
 */
export async function createSortedSample(kc: KernelContext, label: string, b: SortedSampleBuffers, vocab: number): Promise<Dispatch[]> {
  const size = sortedLength(vocab);
  const expected = 4 * size;
  if (b.keys.size < expected || b.ids.size < expected) throw new RangeError(`${label}: keys and ids need ${expected} bytes for vocab ${vocab}, got ${b.keys.size} and ${b.ids.size}`);
  const blocks = grid(size / sortBlock, kc.maxWorkgroupsPerDimension);
  const sortBuffers = [b.keys, b.ids];
  const pass = (entryPoint: string, stage: number, stride: number, buffers: GPUBuffer[], workgroups: readonly [number, number, number], cost: Cost) =>
    kc.dispatch({ label: `${label}.${entryPoint}.${stage}.${stride}`, family: 'sample-sort', entryPoint, params: { layout: sampleSortParams, values: { vocab, size, stage, stride } }, buffers, workgroups, cost });

  const blockStages = Math.log2(sortBlock);
  const passes = [pass('sortLocal', sortBlock, 1, [...sortBuffers, b.logits, b.filters, b.counts, b.allowed], blocks, { ...sortPassCost(size, (blockStages * (blockStages + 1)) / 2), bytesRead: 4 * vocab })];
  for (let stage = 2 * sortBlock; stage <= size; stage *= 2) {
    for (let stride = stage / 2; stride >= sortBlock; stride /= 2) passes.push(pass('mergeGlobal', stage, stride, sortBuffers, blocks, sortPassCost(size, 1)));
    passes.push(pass('mergeLocal', stage, sortBlock / 2, sortBuffers, blocks, sortPassCost(size, blockStages)));
  }
  passes.push(pass('pick', size, 0, [...sortBuffers, b.logits, b.filters, b.counts, b.allowed, b.step, b.token], [1, 1, 1], pickCost(vocab)));
  return Promise.all(passes);
}
