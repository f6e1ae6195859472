#!/usr/bin/env node
// `npm test`: the whole suite. Runs every Vitest file under tests/ (unit, GPU and headless-Chromium
// tests; nothing is skipped for a missing GPU or browser) and svelte-check (types of the whole
// project), and exits non-zero when either fails. Extra arguments go to vitest
// (e.g. `npm test -- tests/browser`).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const repoRoot = fileURLToPath(new URL('..', import.meta.url));
const chromium = process.env.LAB_CHROMIUM || '/usr/bin/chromium';

function run(label, command, args) {
  console.log(`\n=== ${label}: ${[command, ...args].join(' ')}\n`);
  const started = Date.now();
  const result = spawnSync(command, args, { cwd: repoRoot, stdio: 'inherit', env: process.env });
  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  const ok = result.status === 0;
  const why = result.error ? result.error.message : result.signal ? `killed by ${result.signal}` : `exit code ${result.status}`;
  console.log(`\n=== ${label}: ${ok ? 'passed' : `FAILED (${why})`} in ${seconds} s`);
  return ok;
}

if (!existsSync(chromium)) {
  // Not a skip: the browser tests run anyway and fail; this just says why up front.
  console.error(`\n!!! Chromium is not installed at ${chromium}: the browser tests (tests/browser) will FAIL.`);
  console.error('!!! Install it with `apt-get install chromium libvulkan1` (Debian/Ubuntu), or set LAB_CHROMIUM.\n');
}

const bin = (name) => fileURLToPath(new URL(`../node_modules/.bin/${name}`, import.meta.url));
const results = [
  ['vitest', run('vitest', bin('vitest'), ['run', ...process.argv.slice(2)])],
  ['svelte-check', run('svelte-check', bin('svelte-check'), ['--tsconfig', './tsconfig.json'])],
];

const failed = results.filter(([, ok]) => !ok).map(([name]) => name);
if (failed.length > 0) {
  console.error(`\nnpm test FAILED: ${failed.join(', ')}`);
  process.exit(1);
}
console.log('\nnpm test passed: vitest and svelte-check');
