// Copying a storage buffer back to the CPU: for checks against the reference (tests, the
// benchmark, the workbench), never on the decode path, which maps small staging buffers it keeps.

/** The whole buffer's bytes, through a temporary MAP_READ copy. */
export async function readBuffer(device: GPUDevice, buffer: GPUBuffer): Promise<ArrayBuffer> {
  const readback = device.createBuffer({ label: `${buffer.label || 'buffer'}.readback`, size: buffer.size, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  try {
    const encoder = device.createCommandEncoder();
    encoder.copyBufferToBuffer(buffer, 0, readback, 0, buffer.size);
    device.queue.submit([encoder.finish()]);
    await readback.mapAsync(GPUMapMode.READ);
    return readback.getMappedRange().slice(0);
  } finally {
    readback.destroy();
  }
}

export async function readBufferF32(device: GPUDevice, buffer: GPUBuffer): Promise<Float32Array> {
  return new Float32Array(await readBuffer(device, buffer));
}
