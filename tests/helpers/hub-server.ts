// A stand-in for the Hugging Face Hub on 127.0.0.1, for tests (no Hub on these machines). It has
// the Hub's URL layout, GET /{owner}/{name}/resolve/{revision}/{path}, and its habits: large (LFS)
// files answer with a 302 to a CDN path whose ETag is the file's SHA-256, small files are served
// in place with a git-style ETag, Range requests get 206 + Content-Range, unknown repos, revisions
// and files get 404, and every answer carries CORS headers so a page on another origin can read it.
// Faults can be injected per file: drop the connection after N bytes, serve a truncated copy,
// or send slowly.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { modelsDir } from '../../vite.config.ts';

/** A repo's files by path: bytes, or a file on disk read at start. */
export type HubRepo = Record<string, Uint8Array | { file: string }>;

export interface HubFault {
  /** Close the connection after sending this many body bytes (counted from the range start). */
  dropAfterBytes?: number;
  /** Serve only the first N bytes, as a complete response (a damaged copy on the CDN). */
  truncateTo?: number;
  /** Send at about this rate. */
  bytesPerSecond?: number;
  /** Requests the fault applies to before it is used up (default: every request). */
  times?: number;
}

export interface HubRequest {
  method: string;
  /** Path and query as requested. */
  path: string;
  range: string | null;
  /** The status answered (200 until the head is written). */
  readonly status: number;
}

export interface HubServer {
  /** e.g. "http://127.0.0.1:41234" (no trailing slash, like https://huggingface.co). */
  url: string;
  /** Faults by "owner/name/path". */
  faults: Map<string, HubFault>;
  /** Every request served, in order. */
  requests: HubRequest[];
  /** The SHA-256 of a file, as its LFS ETag carries it. */
  sha256(repo: string, path: string): string;
  close(): Promise<void>;
}

const lfsPattern = /\.(bin|gguf|safetensors)$/i;

interface HostedFile {
  repo: string;
  path: string;
  bytes: Uint8Array;
  sha256: string;
  /** git blob id, the ETag of a file served in place. */
  gitSha1: string;
}

/** The shared model files in Hub layout: karpathy/tinyllamas's stories260K folder, and stories260K-hf as a repo. */
export function sharedRepos(): Record<string, HubRepo> {
  const dir = modelsDir();
  return {
    'karpathy/tinyllamas': {
      'stories260K/stories260K.bin': { file: join(dir, 'stories260K', 'stories260K.bin') },
      'stories260K/tok512.bin': { file: join(dir, 'stories260K', 'tok512.bin') },
    },
    'lab-test/stories260K-hf': {
      'config.json': { file: join(dir, 'stories260K-hf', 'config.json') },
      'model.safetensors': { file: join(dir, 'stories260K-hf', 'model.safetensors') },
    },
  };
}

export async function startHubServer(repos: Record<string, HubRepo>): Promise<HubServer> {
  const hosted = new Map<string, HostedFile>();
  const bySha = new Map<string, HostedFile>();
  for (const [repo, files] of Object.entries(repos)) {
    for (const [path, source] of Object.entries(files)) {
      const bytes = source instanceof Uint8Array ? source : new Uint8Array(readFileSync(source.file));
      const gitSha1 = createHash('sha1').update(`blob ${bytes.length}\0`).update(bytes).digest('hex');
      const file = { repo, path, bytes, sha256: createHash('sha256').update(bytes).digest('hex'), gitSha1 };
      hosted.set(`${repo}/${path}`, file);
      bySha.set(file.sha256, file);
    }
  }
  const faults = new Map<string, HubFault>();
  const requests: HubRequest[] = [];

  const server = createServer((req, res) => {
    requests.push({
      method: req.method ?? 'GET',
      path: req.url ?? '/',
      range: req.headers.range ?? null,
      get status() {
        return res.statusCode;
      },
    });
    res.setHeader('Access-Control-Allow-Origin', '*');
    res.setHeader('Access-Control-Expose-Headers', 'Content-Length, Content-Range, Accept-Ranges, ETag, X-Linked-Etag, X-Linked-Size');
    if (req.method === 'OPTIONS') {
      res.setHeader('Access-Control-Allow-Headers', 'Range');
      res.setHeader('Access-Control-Allow-Methods', 'GET, HEAD');
      return void res.writeHead(204).end();
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') return void res.writeHead(405).end();
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://hub').pathname);

    const cdn = /^\/cdn\/([0-9a-f]{64})\/[^/]+$/.exec(path);
    if (cdn) {
      const file = bySha.get(cdn[1]);
      if (!file) return notFound(res, 'Entry not found');
      return serveBytes(req, res, file, { ETag: `"${file.sha256}"` });
    }
    const resolve = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(path);
    if (!resolve) return notFound(res, 'Repository not found');
    const [, repo, revision, filePath] = resolve;
    if (!(repo in repos)) return notFound(res, 'Repository not found');
    if (revision !== 'main') return notFound(res, 'Revision Not Found');
    const file = hosted.get(`${repo}/${filePath}`);
    if (!file) return notFound(res, 'Entry not found');
    if (lfsPattern.test(filePath)) {
      res.writeHead(302, {
        Location: `/cdn/${file.sha256}/${encodeURIComponent(filePath.split('/').pop()!)}`,
        'X-Linked-Etag': `"${file.sha256}"`,
        'X-Linked-Size': String(file.bytes.length),
        ETag: `"${file.sha256}"`,
      });
      return void res.end();
    }
    serveBytes(req, res, file, { ETag: `"${file.gitSha1}"` });
  });

  function notFound(res: ServerResponse, message: string): void {
    res.writeHead(404, { 'Content-Type': 'text/plain', 'X-Error-Code': message.replace(/ /g, '') }).end(message);
  }

  /** The file's bytes (all, or the requested range), with the file's fault applied. */
  function serveBytes(req: IncomingMessage, res: ServerResponse, file: HostedFile, headers: Record<string, string>): void {
    const key = `${file.repo}/${file.path}`;
    const fault = faults.get(key);
    if (fault && fault.times !== undefined && req.method === 'GET') {
      fault.times--;
      if (fault.times <= 0) faults.delete(key);
    }
    const bytes = fault?.truncateTo !== undefined ? file.bytes.subarray(0, fault.truncateTo) : file.bytes;
    let start = 0;
    let end = bytes.length - 1;
    let status = 200;
    const range = req.headers.range;
    if (range) {
      const match = /^bytes=(\d+)-(\d*)$/.exec(range);
      if (!match || Number(match[1]) >= bytes.length) {
        return void res.writeHead(416, { 'Content-Range': `bytes */${bytes.length}` }).end();
      }
      start = Number(match[1]);
      if (match[2] !== '') end = Math.min(end, Number(match[2]));
      status = 206;
      headers['Content-Range'] = `bytes ${start}-${end}/${bytes.length}`;
    }
    const body = bytes.subarray(start, end + 1);
    res.writeHead(status, { ...headers, 'Accept-Ranges': 'bytes', 'Content-Type': 'application/octet-stream', 'Content-Length': String(body.length) });
    if (req.method === 'HEAD') return void res.end();
    void send(res, body, fault);
  }

  async function send(res: ServerResponse, body: Uint8Array, fault: HubFault | undefined): Promise<void> {
    const limit = fault?.dropAfterBytes ?? Infinity;
    const chunk = 16 * 1024;
    for (let offset = 0; offset < body.length; offset += chunk) {
      if (res.destroyed) return;
      const piece = body.subarray(offset, Math.min(offset + chunk, body.length, limit));
      if (piece.length > 0 && !res.write(piece)) await new Promise((resolve) => res.once('drain', resolve));
      if (offset + chunk >= limit) {
        // Let the bytes so far reach the client, then cut the connection mid-body.
        await new Promise((resolve) => setTimeout(resolve, 20));
        res.socket?.destroy();
        return;
      }
      if (fault?.bytesPerSecond) await new Promise((resolve) => setTimeout(resolve, (piece.length * 1000) / fault.bytesPerSecond!));
    }
    res.end();
  }

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    faults,
    requests,
    sha256: (repo, path) => {
      const file = hosted.get(`${repo}/${path}`);
      if (!file) throw new Error(`the hub server has no ${repo}/${path}`);
      return file.sha256;
    },
    /** Stops serving (a test takes the Hub away mid-way; calling it again does nothing). */
    close: () =>
      new Promise<void>((resolve, reject) => {
        if (!server.listening) return resolve();
        server.closeAllConnections();
        server.close((error) => (error ? reject(error) : resolve()));
      }),
  };
}
