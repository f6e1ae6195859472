// Every WGSL source the engine uses, by family (one family per file under shaders/), and the
// compile step that turns a WGSL error into a ShaderCompileError with file:line:column.
import attention from '../../../shaders/attention.wgsl?raw';
import bandwidth from '../../../shaders/bandwidth.wgsl?raw';
import elementwise from '../../../shaders/elementwise.wgsl?raw';
import embedding from '../../../shaders/embedding.wgsl?raw';
import matmul from '../../../shaders/matmul.wgsl?raw';
import matvec from '../../../shaders/matvec.wgsl?raw';
import pagedAttention from '../../../shaders/paged-attention.wgsl?raw';
import rmsnorm from '../../../shaders/rmsnorm.wgsl?raw';
import rope from '../../../shaders/rope.wgsl?raw';
import sample from '../../../shaders/sample.wgsl?raw';
import sampleSort from '../../../shaders/sample-sort.wgsl?raw';
import { ShaderCompileError } from '../errors.ts';

export const shaderSources = { attention, bandwidth, elementwise, embedding, matmul, matvec, 'paged-attention': pagedAttention, rmsnorm, rope, sample, 'sample-sort': sampleSort } as const;
export type ShaderFamily = keyof typeof shaderSources;

/** Compiles WGSL; errors become a ShaderCompileError listing `name.wgsl:line:col: message`. */
export async function compileShader(device: GPUDevice, name: string, code: string): Promise<GPUShaderModule> {
  device.pushErrorScope('validation');
  const module = device.createShaderModule({ label: name, code });
  const info = await module.getCompilationInfo();
  const scopeError = await device.popErrorScope();
  const errors = info.messages.filter((m) => m.type === 'error');
  if (errors.length > 0) {
    const lines = errors.map((m) => `${name}.wgsl:${m.lineNum}:${m.linePos}: ${m.message}`);
    throw new ShaderCompileError(`WGSL failed to compile:\n${lines.join('\n')}`);
  }
  if (scopeError) throw new ShaderCompileError(`${name}.wgsl: ${scopeError.message}`);
  return module;
}
