// The lab as users get it: a production `vite build` served by `vite preview` on a free port
// (which also serves the models folder at /models/, see vite.config.ts).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, preview } from 'vite';

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));

export interface BuiltApp {
  /** The build's output folder (removed by close). */
  outDir: string;
  /** e.g. "http://127.0.0.1:41234/". */
  baseUrl: string;
  close(): Promise<void>;
}

export async function buildAndPreview(prefix: string): Promise<BuiltApp> {
  const outDir = mkdtempSync(join(tmpdir(), `${prefix}-`));
  try {
    await build({ root: repoRoot, logLevel: 'warn', clearScreen: false, build: { outDir, emptyOutDir: true } });
    const server = await preview({
      root: repoRoot,
      logLevel: 'warn',
      clearScreen: false,
      build: { outDir },
      preview: { host: '127.0.0.1', port: 0, strictPort: false, open: false },
    });
    return {
      outDir,
      baseUrl: server.resolvedUrls?.local[0] ?? '',
      async close() {
        await server.close();
        rmSync(outDir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    rmSync(outDir, { recursive: true, force: true });
    throw error;
  }
}
