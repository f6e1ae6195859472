// One file from the network into a DownloadStore: streamed, with progress (bytes, rate, time
// left), cancellable, resumed with an HTTP Range request after the connection drops (the bytes
// that arrived are kept in the store, so a reload resumes too), and checked before it is stored as
// complete: its size against the size the catalog or the server announced, its SHA-256 against
// the catalog's or the Hub's (an LFS file's ETag is its SHA-256).
import { CancelledError } from '../errors.ts';
import { Sha256 } from './sha256.ts';

/** Where downloads keep their bytes: pieces of unfinished files, and complete files. */
export interface DownloadStore {
  /** The stored complete file's size, or null when it is not stored complete. */
  completeSize(url: string): Promise<number | null>;
  /** The pieces an unfinished download kept, in order (none: []). */
  partial(url: string): Promise<Blob[]>;
  /** Keeps piece number `index` (0, 1, …) of an unfinished download. */
  appendPartial(url: string, index: number, bytes: Uint8Array<ArrayBuffer>): Promise<void>;
  /** Stores the pieces, in order, as the complete file and forgets them as pieces. */
  commit(url: string, pieces: Blob[], checked: CheckedFile): Promise<void>;
  dropPartial(url: string): Promise<void>;
}

/** What was verified about a complete file. */
export interface CheckedFile {
  size: number;
  /** Lower-case hex, when a hash was known to check against. */
  sha256: string | null;
}

export interface FileProgress {
  url: string;
  state: 'downloading' | 'retrying' | 'verifying' | 'done';
  receivedBytes: number;
  /** null until the size is known. */
  totalBytes: number | null;
  /** Over the last few seconds; 0 before there is a measurement. */
  bytesPerSecond: number;
  /** null while the size or the rate is unknown. */
  secondsLeft: number | null;
  /** Connections that dropped and were resumed so far. */
  resumes: number;
}

/** The file could not be downloaded whole and intact; nothing was stored as complete. */
export class DownloadError extends Error {
  override name = 'DownloadError';
  constructor(
    readonly url: string,
    problem: string,
  ) {
    super(`${url}: ${problem}`);
  }
}

export interface DownloadOptions {
  url: string;
  store: DownloadStore;
  /** Known size (from the catalog); else the server's X-Linked-Size or Content-Length is used. */
  size?: number;
  /** Known SHA-256 (from the catalog); else the server's ETag when it is one. */
  sha256?: string;
  signal?: AbortSignal;
  onProgress?: (progress: FileProgress) => void;
  fetch?: typeof fetch;
  /** Connection drops in a row, with no byte arriving between them, before giving up. */
  maxRetries?: number;
  /** Bytes held in memory before they are written to the store as a piece. */
  pieceBytes?: number;
  /** Wait before retry n (1, 2, …), in ms. */
  retryDelayMs?: (retry: number) => number;
}

const sha256Pattern = /^[0-9a-f]{64}$/;

/** The SHA-256 a Hub response names: X-Linked-Etag (on LFS redirects) or ETag, when it is 64 hex digits (a git blob's is 40). */
export function announcedSha256(headers: Headers): string | null {
  for (const name of ['x-linked-etag', 'etag']) {
    const value = headers.get(name)?.replace(/^W\//, '').replace(/"/g, '').toLowerCase();
    if (value && sha256Pattern.test(value)) return value;
  }
  return null;
}

/** `bytes start-end/total` → its numbers (total null for '*'). */
export function parseContentRange(value: string | null): { start: number; end: number; total: number | null } | null {
  const match = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(value?.trim() ?? '');
  if (!match) return null;
  return { start: Number(match[1]), end: Number(match[2]), total: match[3] === '*' ? null : Number(match[3]) };
}

/** Bytes per second over a sliding window of recent samples. */
class RateMeter {
  readonly #samples: Array<{ ms: number; bytes: number }> = [];
  constructor(readonly windowMs = 3000) {}

  add(ms: number, bytes: number): void {
    this.#samples.push({ ms, bytes });
    while (this.#samples.length > 2 && ms - this.#samples[0].ms > this.windowMs) this.#samples.shift();
  }

  bytesPerSecond(): number {
    const first = this.#samples[0];
    const last = this.#samples[this.#samples.length - 1];
    if (!first || last.ms - first.ms < 100) return 0;
    return ((last.bytes - first.bytes) * 1000) / (last.ms - first.ms);
  }
}

function concat(chunks: Uint8Array[], length: number): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(length);
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.length;
  }
  return out;
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(timer);
      reject(new CancelledError('download cancelled'));
    }, { once: true });
  });

/**
 * Downloads `url` into `store` unless it is stored complete already. Rejects with CancelledError
 * when `signal` aborts (the bytes so far stay in the store for a later resume) and with
 * DownloadError when the file is missing, truncated or corrupt (nothing is stored as complete).
 */
export async function downloadFile(options: DownloadOptions): Promise<CheckedFile> {
  const { url, store, signal } = options;
  const fetchFile = options.fetch ?? globalThis.fetch.bind(globalThis);
  const maxRetries = options.maxRetries ?? 5;
  const pieceBytes = options.pieceBytes ?? 8 << 20;
  const retryDelayMs = options.retryDelayMs ?? ((retry: number) => Math.min(8000, 500 * 2 ** (retry - 1)));
  const fail = (problem: string) => new DownloadError(url, problem);

  const stored = await store.completeSize(url);
  if (stored !== null) {
    options.onProgress?.({ url, state: 'done', receivedBytes: stored, totalBytes: stored, bytesPerSecond: 0, secondsLeft: 0, resumes: 0 });
    return { size: stored, sha256: null };
  }

  let pieces = await store.partial(url);
  let received = pieces.reduce((sum, piece) => sum + piece.size, 0);
  let expectedSize: number | null = options.size ?? null;
  let expectedHash: string | null = options.sha256?.toLowerCase() ?? null;
  let resumes = 0;
  let retriesInARow = 0;
  const meter = new RateMeter();
  const report = (state: FileProgress['state']) => {
    const rate = meter.bytesPerSecond();
    const secondsLeft = expectedSize !== null && rate > 0 ? Math.max(0, expectedSize - received) / rate : null;
    options.onProgress?.({ url, state, receivedBytes: received, totalBytes: expectedSize, bytesPerSecond: rate, secondsLeft, resumes });
  };
  const restartFromZero = async () => {
    await store.dropPartial(url);
    pieces = [];
    received = 0;
  };

  for (;;) {
    if (signal?.aborted) throw new CancelledError('download cancelled');
    if (expectedSize !== null && received >= expectedSize) break;
    const receivedBefore = received;
    try {
      await attempt();
      break;
    } catch (error) {
      if (signal?.aborted) throw new CancelledError('download cancelled');
      if (error instanceof DownloadError) throw error;
      // The connection failed or dropped: resume from the bytes kept, unless it keeps failing.
      retriesInARow = received > receivedBefore ? 1 : retriesInARow + 1;
      if (retriesInARow > maxRetries) throw fail(`the connection failed ${retriesInARow} times in a row (${(error as Error).message}); ${received} bytes are kept to resume from`);
      resumes++;
      report('retrying');
      await sleep(retryDelayMs(retriesInARow), signal);
    }
  }

  if (expectedSize !== null && received !== expectedSize) {
    await store.dropPartial(url);
    throw fail(`truncated: the server sent ${received} bytes of the ${expectedSize} expected`);
  }
  report('verifying');
  if (expectedHash !== null) {
    const hash = new Sha256();
    for (const piece of pieces) hash.update(new Uint8Array(await piece.arrayBuffer()));
    const actual = hash.hex();
    if (actual !== expectedHash) {
      await store.dropPartial(url);
      throw fail(`corrupt: its SHA-256 is ${actual}, expected ${expectedHash}`);
    }
  }
  const checked = { size: received, sha256: expectedHash };
  await store.commit(url, pieces, checked);
  report('done');
  return checked;

  /** One request from `received` on; resolves when the response ended cleanly. */
  async function attempt(): Promise<void> {
    const response = await fetchFile(url, { headers: received > 0 ? { Range: `bytes=${received}-` } : {}, signal });
    if (received > 0 && response.status === 416) {
      // Nothing after our bytes: what we have is the whole file (its size decides below).
      await response.body?.cancel();
      expectedSize ??= received;
      return;
    }
    if (!response.ok || !response.body) {
      await response.body?.cancel();
      throw fail(response.status === 404 ? 'not found (HTTP 404)' : `could not be fetched (HTTP ${response.status})`);
    }
    expectedHash ??= announcedSha256(response.headers);
    const linkedSize = Number(response.headers.get('x-linked-size') ?? NaN);
    if (expectedSize === null && Number.isSafeInteger(linkedSize)) expectedSize = linkedSize;

    let start = 0;
    let total: number | null = null;
    const length = Number(response.headers.get('content-length') ?? NaN);
    if (response.status === 206) {
      const range = parseContentRange(response.headers.get('content-range'));
      if (!range || range.start !== received) {
        // Not the bytes we asked for: start over rather than splice in the wrong ones.
        await response.body.cancel();
        await restartFromZero();
        throw new Error(`the server answered the range request for bytes ${received}- with ${response.headers.get('content-range') ?? 'no Content-Range'}`);
      }
      start = range.start;
      total = range.total;
    } else {
      // 200: the whole file (a server that ignores Range sends it from the start).
      if (received > 0) await restartFromZero();
      if (Number.isSafeInteger(length)) total = length;
    }
    if (total !== null && expectedSize !== null && total !== expectedSize) {
      await response.body.cancel();
      await store.dropPartial(url);
      throw fail(`the server has ${total} bytes but ${expectedSize} were expected (a different or truncated copy)`);
    }
    expectedSize ??= total;
    if (start === 0 && received === 0) report('downloading');

    const reader = response.body.getReader();
    let held: Uint8Array[] = [];
    let heldBytes = 0;
    const keep = async () => {
      if (heldBytes === 0) return;
      const bytes = concat(held, heldBytes);
      await store.appendPartial(url, pieces.length, bytes);
      pieces.push(new Blob([bytes]));
      held = [];
      heldBytes = 0;
    };
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        held.push(value);
        heldBytes += value.length;
        received += value.length;
        meter.add(performance.now(), received);
        report('downloading');
        if (heldBytes >= pieceBytes) await keep();
      }
    } finally {
      // Whatever arrived is kept, also when the connection dropped or the user cancelled.
      await keep();
    }
  }
}
