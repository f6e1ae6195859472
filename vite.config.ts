/// <reference types="vitest/config" />
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { extname, isAbsolute, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineConfig, type Connect, type Plugin } from 'vite';
import { svelte } from '@sveltejs/vite-plugin-svelte';

const repoRoot = fileURLToPath(new URL('.', import.meta.url));

/** Where the model files live: $LAB_MODELS_DIR (relative paths from the repo root), else ../shared/models. */
export function modelsDir(): string {
  return resolve(repoRoot, process.env.LAB_MODELS_DIR || '../shared/models');
}

const contentTypes: Record<string, string> = {
  '.json': 'application/json; charset=utf-8',
  '.md': 'text/plain; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
};

/**
 * Serves the models directory at /models/ in `vite dev` and `vite preview`, read-only (GET and
 * HEAD). The files are never part of the build: they are read from disk on each request.
 */
function serveModels(): Plugin {
  const root = modelsDir();

  async function handle(req: IncomingMessage, res: ServerResponse, next: Connect.NextFunction): Promise<void> {
    if (req.method !== 'GET' && req.method !== 'HEAD') return next();
    const fail = (status: number, message: string) => {
      res.statusCode = status;
      res.setHeader('Content-Type', 'text/plain; charset=utf-8');
      res.end(req.method === 'HEAD' ? undefined : `${message}\n`);
    };
    // Connect strips the /models prefix: req.url is the path inside the models directory.
    // Decode the raw path ourselves (URL parsing would quietly resolve '..'), then refuse any
    // '..' or '.' segment, encoded or not.
    let path: string;
    try {
      path = decodeURIComponent((req.url ?? '/').split(/[?#]/, 1)[0]);
    } catch {
      return fail(400, 'bad path');
    }
    const segments = path.split('/').filter((s) => s !== '');
    if (segments.some((s) => s === '..' || s === '.' || s.includes('\\') || s.includes('\0'))) return fail(403, 'forbidden path');
    const file = resolve(root, ...segments);
    const inside = relative(root, file);
    if (inside === '' || inside.startsWith('..') || isAbsolute(inside) || !file.startsWith(root + sep)) return fail(404, 'not found');

    let size: number;
    try {
      const info = await stat(file);
      if (!info.isFile()) return fail(404, `not found: /models/${segments.join('/')}`);
      size = info.size;
    } catch {
      return fail(404, `not found: /models/${segments.join('/')}`);
    }
    res.statusCode = 200;
    res.setHeader('Content-Type', contentTypes[extname(file).toLowerCase()] ?? 'application/octet-stream');
    res.setHeader('Content-Length', String(size));
    res.setHeader('Cache-Control', 'no-cache');
    if (req.method === 'HEAD') return void res.end();
    const stream = createReadStream(file);
    stream.on('error', (error) => res.destroy(error));
    stream.pipe(res);
  }

  const middleware: Connect.NextHandleFunction = (req, res, next) => {
    handle(req, res, next).catch(next);
  };
  return {
    name: 'lab-serve-models',
    configureServer(server) {
      server.middlewares.use('/models', middleware);
    },
    configurePreviewServer(server) {
      server.middlewares.use('/models', middleware);
    },
  };
}

export default defineConfig({
  plugins: [svelte(), serveModels()],
  // Recorded traces (static/traces/) and other files served as they are.
  publicDir: 'static',
  worker: { format: 'es' },
  // The engine worker is reached through `new Worker(new URL(...))`, which the dependency scan
  // does not follow: name it so its dependencies are pre-bundled before the first page load.
  optimizeDeps: { entries: ['index.html', 'src/worker/engine.worker.ts'] },
  test: {
    include: ['tests/**/*.test.ts'],
    environment: 'node',
    setupFiles: ['tests/setup/gpu-env.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // GPU tests share one software adapter; running files in parallel only thrashes the 2 cores.
    fileParallelism: false,
  },
});
