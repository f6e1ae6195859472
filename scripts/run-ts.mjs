#!/usr/bin/env node
// Runs a TypeScript command-line module of this project in Node through Vite's module runner, so
// the CLI sees exactly what the browser build and the tests see (TypeScript, `?raw` WGSL imports).
// Usage: node scripts/run-ts.mjs src/cli/generate.ts [args...]; the module exports main(args) → exit code.
import { createServer, createServerModuleRunner } from 'vite';

const [modulePath, ...args] = process.argv.slice(2);
if (!modulePath) {
  console.error('usage: node scripts/run-ts.mjs MODULE.ts [args...]');
  process.exit(2);
}

const server = await createServer({
  configFile: false,
  logLevel: 'error',
  appType: 'custom',
  server: { middlewareMode: true, hmr: false, ws: false, watch: null },
  optimizeDeps: { noDiscovery: true, include: [] },
});
let code = 1;
try {
  const runner = createServerModuleRunner(server.environments.ssr, { hmr: false });
  const module = await runner.import(`/${modulePath}`);
  code = await module.main(args);
} catch (error) {
  console.error(`error: ${error instanceof Error ? error.message : String(error)}`);
} finally {
  await server.close();
}
process.exit(code ?? 0);
