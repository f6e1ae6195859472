// Downloads from the local Hub stand-in into the model cache (Cache Storage faked over Maps):
// progress, cancel and resume, resume after a dropped connection with a Range request, and the
// checks that keep a truncated or corrupt file from being stored as complete.
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { CancelledError } from '../src/engine/errors.ts';
import { ModelCache, fileCacheName } from '../src/engine/hub/cache-store.ts';
import { DownloadError, downloadFile, parseContentRange, announcedSha256, type FileProgress } from '../src/engine/hub/download.ts';
import { resolveUrl } from '../src/engine/hub/reference.ts';
import { Sha256 } from '../src/engine/hub/sha256.ts';
import { modelsDir } from '../vite.config.ts';
import { startHubServer, sharedRepos, type HubServer } from './helpers/hub-server.ts';
import { MemoryCaches } from './helpers/memory-caches.ts';

const storiesPath = 'stories260K/stories260K.bin';
const storiesBytes = new Uint8Array(readFileSync(join(modelsDir(), storiesPath)));
const quick = { retryDelayMs: () => 10 };
const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

describe('Sha256', () => {
  it('matches node:crypto for lengths around the block and padding boundaries, fed in uneven pieces', () => {
    for (const length of [0, 1, 55, 56, 63, 64, 65, 119, 120, 1000, 70_001]) {
      const data = new Uint8Array(randomBytes(length));
      const hash = new Sha256();
      for (let offset = 0, step = 1; offset < length; offset += step, step = (step * 7) % 97 + 1) hash.update(data.subarray(offset, offset + step));
      expect(hash.hex(), `length ${length}`).toBe(createHash('sha256').update(data).digest('hex'));
    }
  });
});

describe('response headers', () => {
  it('reads a Content-Range and takes only a 64-hex ETag as a SHA-256', () => {
    expect(parseContentRange('bytes 100-199/1000')).toEqual({ start: 100, end: 199, total: 1000 });
    expect(parseContentRange('bytes 0-9/*')).toEqual({ start: 0, end: 9, total: null });
    expect(parseContentRange('items 0-9/10')).toBeNull();
    const sha = 'ab'.repeat(32);
    expect(announcedSha256(new Headers({ 'X-Linked-Etag': `"${sha}"`, ETag: '"123"' }))).toBe(sha);
    expect(announcedSha256(new Headers({ ETag: `W/"${sha.toUpperCase()}"` }))).toBe(sha);
    expect(announcedSha256(new Headers({ ETag: `"${'a'.repeat(40)}"` }))).toBeNull();
  });
});

describe('downloadFile from the Hub stand-in', () => {
  let hub: HubServer;
  let caches: MemoryCaches;
  let cache: ModelCache;
  const url = () => resolveUrl(hub.url, 'karpathy/tinyllamas', 'main', storiesPath);
  /** The stored file's SHA-256 (comparing digests: a deep compare of a megabyte is slow), or null when absent. */
  const stored = async () => {
    const response = await (await caches.open(fileCacheName)).match(url());
    return response ? sha256(new Uint8Array(await response.arrayBuffer())) : null;
  };

  beforeAll(async () => {
    hub = await startHubServer(sharedRepos());
  });
  afterAll(async () => {
    await hub?.close();
  });
  beforeEach(() => {
    caches = new MemoryCaches();
    cache = new ModelCache(caches);
    hub.faults.clear();
    hub.requests.length = 0;
  });

  it('follows the LFS redirect, reports progress and stores the checked file', async () => {
    hub.faults.set(`karpathy/tinyllamas/${storiesPath}`, { bytesPerSecond: 4 << 20 });
    const events: FileProgress[] = [];
    const checked = await downloadFile({ url: url(), store: cache, onProgress: (p) => events.push(p), pieceBytes: 256 << 10 });

    expect(checked).toEqual({ size: storiesBytes.length, sha256: hub.sha256('karpathy/tinyllamas', storiesPath) });
    expect(await stored()).toBe(sha256(storiesBytes));
    expect(hub.requests.map((r) => r.status)).toEqual([302, 200]);
    const downloading = events.filter((e) => e.state === 'downloading');
    expect(downloading.length).toBeGreaterThan(10);
    for (let i = 1; i < downloading.length; i++) expect(downloading[i].receivedBytes).toBeGreaterThanOrEqual(downloading[i - 1].receivedBytes);
    expect(downloading.every((e) => e.totalBytes === storiesBytes.length)).toBe(true);
    // Sent at 4 MiB/s: the rate measured part-way is of that order, and so is the time left.
    const middle = downloading[Math.floor(downloading.length / 2)];
    expect(middle.bytesPerSecond).toBeGreaterThan(1 << 20);
    expect(middle.bytesPerSecond).toBeLessThan(16 << 20);
    expect(middle.secondsLeft).toBeGreaterThan(0);
    expect(middle.secondsLeft).toBeLessThan(1);
    expect(events.map((e) => e.state).slice(-2)).toEqual(['verifying', 'done']);
    // Nothing left behind as pieces; a second call finds the file complete and fetches nothing.
    expect(await cache.partialBytes()).toBe(0);
    const before = hub.requests.length;
    await downloadFile({ url: url(), store: cache });
    expect(hub.requests.length).toBe(before);
  });

  it('resumes with a Range request after the connection drops, and the server honours it (206)', async () => {
    hub.faults.set(`karpathy/tinyllamas/${storiesPath}`, { dropAfterBytes: 300_000, times: 1 });
    const events: FileProgress[] = [];
    await downloadFile({ url: url(), store: cache, onProgress: (p) => events.push(p), pieceBytes: 64 << 10, ...quick });

    expect(await stored()).toBe(sha256(storiesBytes));
    // fetch sends the Range header to the redirect's target too: count the CDN's answers.
    const ranged = hub.requests.filter((r) => r.range !== null && r.path.startsWith('/cdn/'));
    expect(ranged).toHaveLength(1);
    const from = Number(/^bytes=(\d+)-$/.exec(ranged[0].range!)![1]);
    expect(from).toBeGreaterThan(0);
    expect(from).toBeLessThanOrEqual(300_000);
    expect(ranged[0].status).toBe(206);
    expect(events.filter((e) => e.state === 'retrying')).toHaveLength(1);
    expect(events[events.length - 1].resumes).toBe(1);
  });

  it('cancels, keeps the bytes so far, and a later call resumes from them', async () => {
    hub.faults.set(`karpathy/tinyllamas/${storiesPath}`, { bytesPerSecond: 1 << 20, times: 1 });
    const controller = new AbortController();
    const first = downloadFile({
      url: url(),
      store: cache,
      signal: controller.signal,
      pieceBytes: 32 << 10,
      onProgress: (p) => {
        if (p.receivedBytes > 200_000) controller.abort();
      },
    });
    await expect(first).rejects.toBeInstanceOf(CancelledError);
    expect(await stored()).toBeNull();
    const kept = await cache.partialBytes();
    expect(kept).toBeGreaterThan(200_000);
    expect(kept).toBeLessThan(storiesBytes.length);

    await downloadFile({ url: url(), store: cache });
    expect(await stored()).toBe(sha256(storiesBytes));
    expect(hub.requests[hub.requests.length - 1].range).toBe(`bytes=${kept}-`);
    expect(await cache.partialBytes()).toBe(0);
  });

  it('restarts from zero when the server ignores the Range request (200 instead of 206)', async () => {
    const [piece] = [storiesBytes.subarray(0, 1000)];
    await cache.appendPartial(url(), 0, piece.slice());
    const noRanges: typeof fetch = (input, init) => fetch(input, { ...init, headers: {} });
    await downloadFile({ url: url(), store: cache, fetch: noRanges });
    expect(await stored()).toBe(sha256(storiesBytes));
  });

  it('rejects a truncated copy against the known size and stores nothing', async () => {
    hub.faults.set(`karpathy/tinyllamas/${storiesPath}`, { truncateTo: 500_000 });
    const download = downloadFile({ url: url(), store: cache, size: storiesBytes.length });
    await expect(download).rejects.toThrow(DownloadError);
    await expect(download).rejects.toThrow(`the server has 500000 bytes but ${storiesBytes.length} were expected`);
    expect(await stored()).toBeNull();
    expect(await cache.partialBytes()).toBe(0);
  });

  it('rejects a truncated copy by its SHA-256 when the size is not known beforehand', async () => {
    hub.faults.set(`karpathy/tinyllamas/${storiesPath}`, { truncateTo: 500_000 });
    const download = downloadFile({ url: url(), store: cache });
    await expect(download).rejects.toThrow(`corrupt: its SHA-256 is ${sha256(storiesBytes.subarray(0, 500_000))}, expected ${hub.sha256('karpathy/tinyllamas', storiesPath)}`);
    expect(await stored()).toBeNull();
    expect(caches.urls(fileCacheName)).toEqual([]);
  });

  it('rejects a file whose bytes do not match the catalog hash', async () => {
    const wrong = '0'.repeat(64);
    await expect(downloadFile({ url: url(), store: cache, sha256: wrong })).rejects.toThrow(`expected ${wrong}`);
    expect(await stored()).toBeNull();
  });

  it('gives up after repeated drops with no progress, keeping the bytes for later', async () => {
    hub.faults.set(`karpathy/tinyllamas/${storiesPath}`, { dropAfterBytes: 0 });
    const download = downloadFile({ url: url(), store: cache, maxRetries: 2, ...quick });
    await expect(download).rejects.toThrow(/the connection failed 3 times in a row/);
    expect(await stored()).toBeNull();
  });

  it('reports a missing file as not found', async () => {
    const missing = resolveUrl(hub.url, 'karpathy/tinyllamas', 'main', 'stories1B.bin');
    await expect(downloadFile({ url: missing, store: cache })).rejects.toThrow(`${missing}: not found (HTTP 404)`);
  });
});
