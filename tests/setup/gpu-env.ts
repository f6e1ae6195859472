// Vitest setup: make WebGPU constants (GPUBufferUsage, ...) global and pick the Vulkan driver
// before any test touches the GPU.
import { nodeGpu } from '../../src/node/gpu.ts';

nodeGpu();
