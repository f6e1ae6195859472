// FileSource over HTTP(S) with `fetch`, for a browser Web Worker or Node 20 (e.g. a model folder on
// the Hugging Face Hub: https://huggingface.co/{repo}/resolve/main/).

import { ModelFormatError } from '../errors.ts';
import type { FileSource } from './files.ts';

/** Files under `baseUrl` (a trailing '/' is added when missing, so paths resolve inside it). */
export function urlSource(baseUrl: string | URL): FileSource {
  const base = new URL(baseUrl);
  if (!base.pathname.endsWith('/')) base.pathname += '/';
  const url = (path: string) => new URL(path, base).href;

  const request = async (path: string, init: RequestInit): Promise<Response> => {
    try {
      return await fetch(url(path), init);
    } catch (error) {
      throw new ModelFormatError(url(path), `could not be fetched: ${(error as Error).message}`);
    }
  };

  return {
    async read(path) {
      const response = await request(path, {});
      if (!response.ok) {
        await response.body?.cancel();
        throw new ModelFormatError(url(path), httpProblem(response));
      }
      return new Uint8Array(await response.arrayBuffer());
    },
    async exists(path) {
      let response = await request(path, { method: 'HEAD' });
      if (headRefused(response.status)) {
        // Ask for one byte so the check does not download the whole file, and drop the body.
        response = await request(path, { headers: { Range: 'bytes=0-0' } });
        await response.body?.cancel();
      }
      if (response.ok) return true;
      if (response.status === 404 || response.status === 410) return false;
      throw new ModelFormatError(url(path), httpProblem(response));
    },
    describe: url,
  };
}

/** Servers that do not serve HEAD answer 405 Method Not Allowed or 501 Not Implemented. */
function headRefused(status: number): boolean {
  return status === 405 || status === 501;
}

function httpProblem(response: Response): string {
  if (response.status === 404) return 'not found (HTTP 404)';
  return `could not be fetched (HTTP ${response.status}${response.statusText ? ` ${response.statusText}` : ''})`;
}
