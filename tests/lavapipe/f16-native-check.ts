// Runs in a child process on Mesa's lavapipe (the parent test sets VK_ICD_FILENAMES), the one
// software adapter here with shader-f16: every f16-native matvec variant against the CPU
// reference at sizes off the tile, and stories260K greedy in f16-native beside packed f16.
// Prints one JSON line. Usage: node scripts/run-ts.mjs tests/lavapipe/f16-native-check.ts
import { fileURLToPath } from 'node:url';
import { benchMatvec } from '../../src/engine/bench/matvec-bench.ts';
import { requestGpu } from '../../src/engine/gpu/device.ts';
import { KernelContext } from '../../src/engine/gpu/kernel.ts';
import { createEngine } from '../../src/engine/index.ts';
import { directorySource } from '../../src/node/fs-source.ts';
import { nodeGpu } from '../../src/node/gpu.ts';

const models = fileURLToPath(new URL('../../../shared/models/', import.meta.url));

async function greedy(weightFormat: 'f16' | 'f16-native'): Promise<number[]> {
  const engine = await createEngine({ gpu: nodeGpu(), files: directorySource(models), entry: 'stories260K/stories260K.bin', weightFormat, maxContext: 128 });
  try {
    return (await engine.generate({ prompt: '', maxTokens: 60, temperature: 0, seed: 0 })).tokens;
  } finally {
    engine.dispose();
  }
}

export async function main(): Promise<number> {
  const gpu = await requestGpu(nodeGpu());
  const kc = new KernelContext(gpu);
  const all = await benchMatvec(kc, [{ rows: 37, cols: 172 }, { rows: 70, cols: 96 }], { probeGBps: 1, workingSetBytes: 0, repetitions: 1, warmup: 0 });
  const matvec = all.filter((r) => r.format === 'f16-native').map(({ variant, rows, cols, maxAbsError }) => ({ variant, rows, cols, maxAbsError }));
  const adapter = gpu.adapter;
  gpu.device.destroy();
  const tokens = { f16: await greedy('f16'), f16Native: await greedy('f16-native') };
  console.log(JSON.stringify({ adapter: { description: adapter.description, shaderF16: adapter.features.shaderF16 }, matvec, tokens }));
  return 0;
}
