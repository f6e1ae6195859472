// The generate command as a user runs it: the --json line parses and holds the reference tokens;
// bad input exits non-zero with a message naming the file.
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);
const root = fileURLToPath(new URL('..', import.meta.url));
const stories = fileURLToPath(new URL('../../shared/models/stories260K/', import.meta.url));

function generate(...args: string[]) {
  return run(process.execPath, ['scripts/run-ts.mjs', 'src/cli/generate.ts', ...args], { cwd: root, timeout: 120_000 });
}

describe('npm run generate', () => {
  it('--json ends stdout with one JSON object holding the whole sequence and timings', async () => {
    const { stdout } = await generate('--model', `${stories}stories260K.bin`, '--max-tokens', '30', '--json');
    const lines = stdout.trim().split('\n');
    const result = JSON.parse(lines[lines.length - 1]);
    expect(result.tokens.slice(0, 8)).toEqual([1, 403, 407, 261, 378, 432, 383, 286]);
    expect(result.tokens).toHaveLength(31);
    expect(result.text.startsWith('Once upon a time, there was')).toBe(true);
    expect(result).toMatchObject({ promptTokens: 1, generatedTokens: 30 });
    for (const key of ['prefillMs', 'decodeMs', 'decodeTokensPerSecond']) expect(result[key]).toBeGreaterThan(0);
    expect(typeof result.adapter.vendor).toBe('string');
    expect(typeof result.adapter.features.subgroups).toBe('boolean');
  });

  it('streams text without --json', async () => {
    const { stdout } = await generate('--model', `${stories}stories260K.gguf`, '--prompt', 'Once upon a time', '--max-tokens', '12');
    expect(stdout.startsWith(', there was a little girl named Lily')).toBe(true);
  });

  it('names the missing file and exits 1', async () => {
    const error = await generate('--model', `${stories}missing.bin`).catch((e: { code: number; stderr: string }) => e);
    expect(error).toMatchObject({ code: 1 });
    expect((error as { stderr: string }).stderr).toContain(`${stories}missing.bin: not found`);
  });

  it('rejects a bad option value with usage help', async () => {
    const error = await generate('--model', `${stories}stories260K.bin`, '--temperature', 'hot').catch((e: { code: number; stderr: string }) => e);
    expect(error).toMatchObject({ code: 1 });
    expect((error as { stderr: string }).stderr).toContain('--temperature must be a number >= 0, got "hot"');
  });
});
