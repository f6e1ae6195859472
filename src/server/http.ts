// Small node:http helpers: a bounded body reader, JSON responses, OpenAI-style error responses and
// the API-key check.
import { timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ApiError, invalidRequest } from './api-error.ts';

/**
 * The body as text; 413 past `limitBytes`, 400 when it is not UTF-8. An oversized body is still read
 * to its end (and dropped): leaving the loop early would destroy the socket before the 413 is sent.
 */
export async function readBody(request: IncomingMessage, limitBytes: number): Promise<string> {
  const chunks: Buffer[] = [];
  let length = 0;
  for await (const chunk of request as AsyncIterable<Buffer>) {
    length += chunk.length;
    if (length <= limitBytes) chunks.push(chunk);
  }
  if (length > limitBytes) throw new ApiError(413, `the request body is ${length} bytes, over the limit of ${limitBytes}`, 'invalid_request_error', 'request_too_large');
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(Buffer.concat(chunks));
  } catch {
    throw invalidRequest('the request body is not valid UTF-8', null, 'invalid_json');
  }
}

export function sendJson(response: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  response.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': String(Buffer.byteLength(text)), ...headers });
  response.end(text);
}

export function sendError(response: ServerResponse, error: ApiError, headers: Record<string, string> = {}): void {
  sendJson(response, error.status, error.body, headers);
}

/** 401 unless the request carries `Authorization: Bearer <key>` (compared in constant time). */
export function checkApiKey(request: IncomingMessage, key: string): void {
  const header = request.headers.authorization;
  if (!header) throw new ApiError(401, "you didn't provide an API key: send it as 'Authorization: Bearer KEY'", 'invalid_request_error', 'invalid_api_key');
  const given = Buffer.from(header);
  const wanted = Buffer.from(`Bearer ${key}`);
  if (given.length !== wanted.length || !timingSafeEqual(given, wanted)) throw new ApiError(401, 'incorrect API key provided', 'invalid_request_error', 'invalid_api_key');
}
