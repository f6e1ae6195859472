#!/usr/bin/env node
// `npm start`: installs dependencies when node_modules is missing or older than package-lock.json,
// then runs the Vite dev server for the lab page.
//
//   npm start [-- --host 0.0.0.0] [-- --port 5173]      (or HOST=… PORT=… npm start)
//   LAB_MODELS_DIR=/path/to/models npm start             (default: ../shared/models)
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const repoRoot = fileURLToPath(new URL('..', import.meta.url));

const { values } = parseArgs({
  options: {
    host: { type: 'string', default: process.env.HOST || '127.0.0.1' },
    port: { type: 'string', default: process.env.PORT || '5173' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (values.help) {
  console.log('usage: npm start [-- --host HOST] [-- --port PORT]\n  env: HOST, PORT, LAB_MODELS_DIR (default ../shared/models)');
  process.exit(0);
}

/**
 * True when node_modules is missing or does not hold what package-lock.json asks for. npm keeps
 * a record of what it installed in node_modules/.package-lock.json; every required (non-optional)
 * package of the lockfile must be there at the same version.
 */
function dependenciesStale() {
  const installedLock = join(repoRoot, 'node_modules', '.package-lock.json');
  if (!existsSync(installedLock)) return true;
  try {
    const wanted = JSON.parse(readFileSync(join(repoRoot, 'package-lock.json'), 'utf8')).packages ?? {};
    const installed = JSON.parse(readFileSync(installedLock, 'utf8')).packages ?? {};
    return Object.entries(wanted).some(([path, info]) => path !== '' && !info.optional && installed[path]?.version !== info.version);
  } catch {
    return true;
  }
}

function ensureDependencies() {
  if (!dependenciesStale()) return;
  const installedLock = join(repoRoot, 'node_modules', '.package-lock.json');
  console.log(existsSync(installedLock) ? 'package-lock.json changed: reinstalling dependencies (npm ci)…' : 'Installing dependencies (npm ci)…');
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  const result = spawnSync(npm, ['ci'], {
    cwd: repoRoot,
    stdio: 'inherit',
    // onnxruntime-node (pulled in by @huggingface/transformers) would download binaries we never use.
    env: { ...process.env, ONNXRUNTIME_NODE_INSTALL: 'skip' },
  });
  if (result.status !== 0) {
    console.error(`npm ci failed (${result.error?.message ?? `exit code ${result.status}`})`);
    process.exit(result.status || 1);
  }
}

ensureDependencies();

// Same rule as vite.config.ts's modelsDir(): relative paths are taken from the repo root.
const modelsDir = resolve(repoRoot, process.env.LAB_MODELS_DIR || '../shared/models');
const hasStories = existsSync(join(modelsDir, 'stories260K', 'stories260K.bin'));

const { createServer } = await import('vite');
const server = await createServer({
  root: repoRoot,
  server: { host: values.host, port: Number(values.port), strictPort: false },
});
await server.listen();

const urls = server.resolvedUrls ? [...server.resolvedUrls.local, ...server.resolvedUrls.network] : [];
console.log('');
console.log('  WebGPU inference lab');
for (const url of urls) console.log(`  → ${url}`);
console.log(`  models: ${modelsDir} (served at /models/)`);
if (!hasStories) {
  console.warn('');
  console.warn(`  WARNING: ${join(modelsDir, 'stories260K', 'stories260K.bin')} does not exist.`);
  console.warn('  The lab cannot load its default model. Put the shared models beside this repo (../shared/models)');
  console.warn('  or point LAB_MODELS_DIR at a folder that holds stories260K/.');
}
console.log('');
console.log('  Open the page in a browser with WebGPU (recent Chrome or Edge). Ctrl+C stops the server.');
server.bindCLIShortcuts({ print: false });

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    server.close().finally(() => process.exit(0));
  });
}
