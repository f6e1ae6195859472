// Typed errors. They cross the Web Worker boundary as { name, message } and are
// rebuilt by name on the other side (see rebuildError), so the UI can tell a bad
// model file from a lost GPU and say what happened.

/** A model or tokenizer file is missing, truncated or malformed. The message names the file. */
export class ModelFormatError extends Error {
  override name = 'ModelFormatError';
  constructor(
    readonly file: string,
    problem: string,
  ) {
    super(`${file}: ${problem}`);
  }
}

/** No WebGPU adapter or device could be had. */
export class GpuUnavailableError extends Error {
  override name = 'GpuUnavailableError';
}

/** The GPU device was lost (driver reset, out of memory, tab backgrounded). The engine must be re-created. */
export class DeviceLostError extends Error {
  override name = 'DeviceLostError';
}

/** A WGSL module failed to compile; the message carries the compiler's line:column diagnostics. */
export class ShaderCompileError extends Error {
  override name = 'ShaderCompileError';
}

/** A WebGPU validation or out-of-memory error was raised by an operation. */
export class GpuOperationError extends Error {
  override name = 'GpuOperationError';
}

/** A request the engine cannot honour as asked (prompt past the context, bad option). */
export class RequestError extends Error {
  override name = 'RequestError';
}

/** Generation was cancelled by the caller. */
export class CancelledError extends Error {
  override name = 'CancelledError';
}

// Errors whose constructor takes just a message (ModelFormatError is rebuilt separately).
const errorClasses = {
  GpuUnavailableError,
  DeviceLostError,
  ShaderCompileError,
  GpuOperationError,
  RequestError,
  CancelledError,
} as const;

export interface SerializedError {
  name: string;
  message: string;
}

export function serializeError(error: unknown): SerializedError {
  if (error instanceof Error) return { name: error.name, message: error.message };
  return { name: 'Error', message: String(error) };
}

/** Re-creates a typed error from its serialized form (unknown names become plain Errors). */
export function rebuildError({ name, message }: SerializedError): Error {
  if (name === 'ModelFormatError') {
    const colon = message.indexOf(': ');
    return new ModelFormatError(colon > 0 ? message.slice(0, colon) : '', colon > 0 ? message.slice(colon + 2) : message);
  }
  const ErrorClass = errorClasses[name as keyof typeof errorClasses];
  if (ErrorClass) return new ErrorClass(message);
  const error = new Error(message);
  error.name = name;
  return error;
}
