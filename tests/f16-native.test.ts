// The f16-native kernels (`enable f16;`) need shader-f16, which SwiftShader lacks; Mesa 25's
// lavapipe has it (installed by .ci/run). Dawn picks its Vulkan driver once per process, so the
// check runs in a child process pointed at lavapipe.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const repoRoot = fileURLToPath(new URL('..', import.meta.url));
const lavapipeIcd = '/usr/share/vulkan/icd.d/lvp_icd.json';

interface CheckOutput {
  adapter: { description: string; shaderF16: boolean };
  matvec: Array<{ variant: string; rows: number; cols: number; maxAbsError: number }>;
  tokens: { f16: number[]; f16Native: number[] };
}

describe('f16-native on an adapter with shader-f16 (lavapipe)', () => {
  it('matches the reference in every variant and runs stories260K like packed f16', () => {
    expect(existsSync(lavapipeIcd), `${lavapipeIcd} is missing: install Mesa 25 lavapipe (see .ci/run)`).toBe(true);
    const child = spawnSync(process.execPath, ['scripts/run-ts.mjs', 'tests/lavapipe/f16-native-check.ts'], {
      cwd: repoRoot,
      env: { ...process.env, VK_ICD_FILENAMES: lavapipeIcd },
      encoding: 'utf8',
      timeout: 240_000,
    });
    expect(child.status, child.stderr).toBe(0);
    const output = JSON.parse(child.stdout.trim().split('\n').pop()!) as CheckOutput;
    expect(output.adapter.shaderF16).toBe(true);
    expect(output.matvec.map((r) => r.variant).sort()).toEqual(['multiRow', 'multiRow', 'naive', 'naive', 'splitK', 'splitK', 'subgroup', 'subgroup']);
    // Same f16 weights as the reference; only the f32 summation order differs.
    for (const r of output.matvec) expect(r.maxAbsError, `${r.variant} ${r.rows}x${r.cols}`).toBeLessThan(1e-4);
    expect(output.tokens.f16Native).toHaveLength(61);
    // Both read the same f16 weights and accumulate in f32: greedy decoding agrees token for token.
    expect(output.tokens.f16Native).toEqual(output.tokens.f16);
  });
});
