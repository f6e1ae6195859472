import { render } from 'svelte/server';
import { describe, expect, it } from 'vitest';
import { laterChoicesAll, laterSettingDefaults } from '../helpers/settings.ts';
import { visibleText } from '../helpers/ssr.ts';
import { stories260KConfig } from '../helpers/stories260k.ts';
import MemoryHierarchyPanel from '../../src/app/panels/MemoryHierarchyPanel.svelte';
import type { AdapterReport, ModelInfo } from '../../src/engine/engine.ts';


/** Text inside the element carrying data-testid="id". */
function byTestId(body: string, id: string): string {
  const match = body.match(new RegExp(`<(\\w+)[^>]*data-testid="${id}"[^>]*>([\\s\\S]*?)</\\1>`));
  if (!match) throw new Error(`no element ${id}`);
  return visibleText(match[2]).trim();
}

// Sizes chosen so the sums are easy to check: stories260K's shape (dim 64, 5 layers, 4 KV heads of 8).
const model: ModelInfo = {
  source: 'stories260K.bin (llama2.c)',
  config: stories260KConfig,
  tokenizer: 'tok512.bin (llama2.c)',
  chatTemplate: false,
  weightBytes: 1_133_888,
  weightFormat: 'q8_0',
  matvecVariant: 'rows',
  settings: { weightFormat: 'q8_0', matvecVariant: 'auto', sampler: 'gpu', ...laterSettingDefaults },
  choices: {
    weightFormat: { available: ['f32', 'q8_0'], unavailable: [] },
    matvecVariant: { available: ['rows'], unavailable: [] },
    sampler: { available: ['gpu', 'cpu'], unavailable: [] },
    ...laterChoicesAll,
  },
  bandwidth: { readGBps: 10, copyGBps: 8, bytes: 64e6, method: 'timestamp' },
  memory: {
    matrixBytes: 1_000_000,
    embeddingBytes: 131_072,
    vectorBytes: 2_816,
    // 2 (K and V) × 4 bytes × 5 layers × 32 KV dims = 1,280 bytes per token; × 512 positions.
    kvCacheBytes: 655_360,
    kvBytesPerToken: 1_280,
    activationBytes: 20_000,
    contextLength: 512,
    bytesPerToken: 1_010_000,
  },
  load: { fileBytes: 2_000_000, readMs: 100, uploadBytes: 1_133_888, uploadMs: 50, compileMs: 30 },
};

const adapter: AdapterReport = {
  vendor: 'google',
  architecture: 'swiftshader',
  device: '',
  description: 'SwiftShader Device (Subzero)',
  isFallbackAdapter: false,
  features: { shaderF16: false, subgroups: true, timestampQuery: true },
  subgroupMinSize: 4,
  subgroupMaxSize: 4,
  limits: {
    maxBufferSize: 2 ** 30,
    maxStorageBufferBindingSize: 2 ** 27,
    maxComputeWorkgroupStorageSize: 16_384,
    maxComputeInvocationsPerWorkgroup: 256,
    maxComputeWorkgroupSizeX: 256,
    maxComputeWorkgroupsPerDimension: 65_535,
    maxStorageBuffersPerShaderStage: 8,
  },
};

const props = { model, adapter, storage: null, animate: true };

describe('MemoryHierarchyPanel', () => {
  it('shows what lives in GPU memory, formatted from the given bytes', () => {
    const sizes = byTestId(render(MemoryHierarchyPanel, { props }).body, 'gpu-sizes');
    // Weights: 1,000,000 + 131,072 + 2,816 = 1,133,888 bytes.
    expect(sizes).toContain('weights 1.13 MB = matrices 1.00 MB (q8_0) + embedding 131 kB + vectors 2.82 kB');
    expect(sizes).toContain('KV cache 655 kB = 1.28 kB per token × 512 tokens of context');
    expect(sizes).toContain('activations 20.0 kB');
    // Total: 1,133,888 + 655,360 + 20,000 = 1,809,248 bytes.
    expect(sizes).toContain('total 1.81 MB');
  });

  it('shows the measured transfer rates between tiers', () => {
    const { body } = render(MemoryHierarchyPanel, { props });
    // 2 MB in 100 ms is 0.02 GB/s; 1,133,888 bytes in 50 ms is 0.0227 GB/s.
    expect(byTestId(body, 'read-rate')).toContain('2.00 MB in 100 ms = 0.0200 GB/s');
    expect(byTestId(body, 'upload-rate')).toContain('1.13 MB in 50.0 ms = 0.0227 GB/s');
    expect(byTestId(body, 'probe-rate')).toMatch(/^read 10.0 GB\/s ?, copy 8.00 GB\/s \(roofline probe over 64.0 MB\)$/);
    expect(visibleText(body)).toContain('limit 16.4 kB per workgroup (16384 bytes');
  });

  it('labels the H100 column as reference figures and compares bandwidths', () => {
    const { body } = render(MemoryHierarchyPanel, { props });
    const shown = visibleText(body);
    expect(shown).toContain('NVIDIA H100 SXM reference figures (not measured here)');
    expect(shown).toContain('HBM3, 80 GB');
    expect(shown).toContain('~50 MB on-chip SRAM');
    expect(shown).toContain('~64 GB/s (PCIe 5.0)');
    expect(shown).toContain('3,350 GB/s HBM');
    expect(shown).toContain('~7 GB/s NVMe read');
    expect(shown).toContain('inference-knowledge-base.md');
    expect(byTestId(body, 'bandwidth-ratio')).toContain('H100 HBM is 335× the bandwidth measured on this adapter');
  });

  it('breaks one token’s bytes down and gives the bandwidth floor', () => {
    const { body } = render(MemoryHierarchyPanel, { props });
    const shown = visibleText(body);
    expect(shown).toContain('weight matrices (q8_0): 1.00 MB (99.0%)');
    // One f32 row of 64 values; K and V of one position; the rest of 1,010,000 is 8,464 bytes.
    expect(shown).toContain('embedding row (f32): 256 B');
    expect(shown).toContain('KV cache read (position 0): 1.28 kB');
    expect(shown).toContain('activations and norm weights: 8.46 kB');
    // 1.01 MB ÷ 10 GB/s = 101 µs; at 3,350 GB/s, 0.301 µs.
    expect(byTestId(body, 'bandwidth-floor')).toContain('1.01 MB ÷ 10.0 GB/s = 101 µs per token');
    expect(byTestId(body, 'h100-floor')).toContain('1.01 MB ÷ 3,350 GB/s = 0.301 µs per token');
    expect(byTestId(body, 'h100-floor')).toContain('projection from reference figures');
  });

  it('animates only when asked', () => {
    expect(render(MemoryHierarchyPanel, { props }).body).toMatch(/class="flow flow-matrices[^"]*\bmoving\b/);
    expect(render(MemoryHierarchyPanel, { props: { ...props, animate: false } }).body).not.toMatch(/\bmoving\b/);
  });

  it('says where the files come from', () => {
    expect(visibleText(render(MemoryHierarchyPanel, { props }).body)).toContain('not cached (served from the dev server)');
    const cached = visibleText(render(MemoryHierarchyPanel, { props: { ...props, storage: { kind: 'Cache Storage', cachedBytes: 2_000_000 } } }).body);
    expect(cached).toContain('Cache Storage: 2.00 MB');
    const unknown = visibleText(render(MemoryHierarchyPanel, { props: { ...props, storage: { kind: 'Cache Storage', cachedBytes: null } } }).body);
    expect(unknown).toContain('Cache Storage: size unknown');
  });

  it('says when the GPU is a software adapter on the CPU', () => {
    expect(render(MemoryHierarchyPanel, { props }).body).not.toContain('fallback-note');
    const { body } = render(MemoryHierarchyPanel, { props: { ...props, adapter: { ...adapter, isFallbackAdapter: true } } });
    expect(byTestId(body, 'fallback-note')).toContain('software adapter (SwiftShader Device (Subzero)) running on the CPU');
  });

  it('renders without NaN when nothing was timed', () => {
    const untimed: ModelInfo = { ...model, load: { ...model.load, readMs: 0, uploadMs: 0 }, bandwidth: { ...model.bandwidth, readGBps: 0 } };
    const { body } = render(MemoryHierarchyPanel, { props: { ...props, model: untimed } });
    expect(body).not.toMatch(/NaN|Infinity|undefined/);
    expect(byTestId(body, 'bandwidth-floor')).toContain('no bandwidth measured');
    expect(body).not.toContain('bandwidth-ratio');
  });

  it('escapes adapter text', () => {
    const { body } = render(MemoryHierarchyPanel, { props: { ...props, adapter: { ...adapter, description: '<script>x</script>', isFallbackAdapter: true } } });
    expect(body).not.toContain('<script>');
    expect(body).toContain('&lt;script>');
  });
});
