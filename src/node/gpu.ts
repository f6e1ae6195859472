// WebGPU for Node through Dawn (the `webgpu` npm package). Chooses the Vulkan driver: the
// system's when the machine has a GPU, otherwise the SwiftShader software driver shipped with
// Debian's chromium package, so the same WGSL runs on machines without a GPU (CI).
import { existsSync, mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { create, globals } from 'webgpu';

export const swiftShaderIcd = '/usr/lib/chromium/vk_swiftshader_icd.json';

// Mesa installs ICD files for Intel/AMD/lavapipe whether or not the hardware exists (and Dawn
// rejects Debian 12's lavapipe), so the presence of a GPU device node is the signal, not ICD files.
function hasGpuDeviceNode(): boolean {
  if (existsSync('/dev/dri') && readdirSync('/dev/dri').some((f) => f.startsWith('renderD'))) return true;
  return existsSync('/dev') && readdirSync('/dev').some((f) => /^nvidia\d+$/.test(f));
}

/** Points Dawn at SwiftShader when the machine has no GPU and the user chose no Vulkan driver. */
export function chooseVulkanDriver(): void {
  if (process.env.VK_ICD_FILENAMES || process.env.VK_DRIVER_FILES) return;
  if (!hasGpuDeviceNode() && existsSync(swiftShaderIcd)) process.env.VK_ICD_FILENAMES = swiftShaderIcd;
}

// Vulkan's window-system probing complains on stderr without a runtime dir (headless machines, CI).
function ensureRuntimeDir(): void {
  if (!process.env.XDG_RUNTIME_DIR) process.env.XDG_RUNTIME_DIR = mkdtempSync(join(tmpdir(), 'lab-xdg-'));
}

let gpu: GPU | undefined;

/** The process-wide `GPU` object (navigator.gpu's equivalent in Node). */
export function nodeGpu(): GPU {
  if (!gpu) {
    chooseVulkanDriver();
    ensureRuntimeDir();
    Object.assign(globalThis, globals);
    // Dawn rounds timestamps down to 2^16 ns by default (a browser's fingerprinting defence), which
    // would swamp a single kernel's time; the command-line tools and tests want the real ones.
    gpu = create(['disable-dawn-features=timestamp_quantization']);
  }
  return gpu;
}
