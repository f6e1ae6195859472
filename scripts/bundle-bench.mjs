#!/usr/bin/env node
// Builds the bench command into dist-bench/ for a GPU machine that has Node but none of this
// project's modules: one dist-bench/bench.mjs (every import bundled by Vite's SSR build, the WGSL
// included, the `webgpu` package's JS loader too) plus Dawn's native addon, which cannot be
// bundled and which that loader looks for at dist/<platform>-<arch>/dawn.node beside the bundle.
// Usage: node scripts/bundle-bench.mjs [PLATFORM...]   (platforms as named in
// node_modules/webgpu/dist, e.g. linux-x64; default: this machine's)
// Then, on the GPU machine: LAB_MODELS_DIR=/path/to/models node dist-bench/bench.mjs [bench options]
import { cpSync, existsSync, readdirSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { build } from 'vite';

const root = fileURLToPath(new URL('..', import.meta.url));
const out = `${root}dist-bench`;
const addons = `${root}node_modules/webgpu/dist`;
const host = process.platform === 'darwin' ? 'darwin-universal' : `${process.platform}-${process.arch}`;
const platforms = process.argv.length > 2 ? process.argv.slice(2) : [host];
for (const platform of platforms) {
  if (!existsSync(`${addons}/${platform}/dawn.node`)) {
    console.error(`no Dawn addon for ${platform}: node_modules/webgpu/dist has ${readdirSync(addons).join(', ')}`);
    process.exit(2);
  }
}

// The entry runs the CLI module the way scripts/run-ts.mjs does.
const entryId = 'virtual:bench-entry';
const entry = {
  name: 'bench-entry',
  enforce: 'pre',
  resolveId: (id) => (id === entryId ? `\0${entryId}` : undefined),
  load: (id) =>
    id === `\0${entryId}` ? `import { main } from '/src/cli/bench.ts';\nprocess.exit(await main(process.argv.slice(2)));\n` : undefined,
};

rmSync(out, { recursive: true, force: true });
await build({
  root,
  configFile: false,
  logLevel: 'warn',
  plugins: [entry],
  // Bundle every dependency (webgpu's loader included); only Node's built-ins stay imports.
  ssr: { noExternal: true },
  build: {
    ssr: true,
    outDir: out,
    target: 'node20',
    minify: false,
    rollupOptions: { input: entryId, output: { entryFileNames: 'bench.mjs', codeSplitting: false } },
  },
});
for (const platform of platforms) cpSync(`${addons}/${platform}/dawn.node`, `${out}/dist/${platform}/dawn.node`);
console.log(`built ${out}/bench.mjs with Dawn for ${platforms.join(', ')}`);
