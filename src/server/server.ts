// The HTTP side of the OpenAI-compatible server (node:http only): routing, the API key, and turning
// each completion request into a generation on the shared scheduler, answered as one JSON body or
// as server-sent events. Every failure becomes an OpenAI-style error body; nothing a client sends
// can take the server down. The models and the request timelines are readable from other origins
// (CORS), so the lab's page can show where a served request's time went.
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { CancelledError, RequestError } from '../engine/errors.ts';
import { ApiError, invalidRequest } from './api-error.ts';
import { GenerationService } from './generation.ts';
import { checkApiKey, readBody, sendError, sendJson } from './http.ts';
import { ServerMetrics } from './metrics.ts';
import { parseChatRequest, parseCompletionRequest, parseJsonBody, type Endpoint } from './openai-request.ts';
import { completionId, responseBody, roleChunk, textChunk, usage, usageChunk, type ResponseHeader } from './responses.ts';
import type { ServingModel } from './serving-model.ts';
import { SseStream } from './sse.ts';
import { TimelineRecorder } from '../engine/timeline.ts';
import { TimelineStore } from './timeline.ts';

export interface ServerOptions {
  serving: ServingModel;
  /** Sequences decoding at once (at most the serving model's batch). */
  maxBatch: number;
  /** Requests waiting for a batch slot before new ones get 429. */
  maxQueue: number;
  /** Reuse the K/V of earlier prompts' full pages (default true). */
  prefixCache?: boolean;
  /** Requests to /v1/ must carry `Authorization: Bearer <apiKey>`. */
  apiKey?: string;
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 0: a free port, read back from `url`. */
  port?: number;
  /** Request timelines kept for GET /v1/requests/{id}/timeline (default 256). */
  timelines?: number;
  /** Where failures are reported (default stderr). */
  log?: (line: string) => void;
}

export interface RunningServer {
  /** http://host:port, without a trailing slash. */
  readonly url: string;
  /** Stops accepting requests and drops open connections (streams in flight end, their sequences cancelled). */
  close(): Promise<void>;
}

const bodyLimitBytes = 1024 * 1024;
/** Seconds a refused client is told to wait: about one short generation on a busy server. */
const retryAfterSeconds = 1;

export async function startServer(options: ServerOptions): Promise<RunningServer> {
  const { serving, maxBatch, maxQueue } = options;
  if (!Number.isInteger(maxQueue) || maxQueue < 0) throw new RequestError(`the queue must hold a whole number >= 0 of requests, got ${maxQueue}`);
  if (maxBatch > serving.model.maxSequences) throw new RequestError(`the batch can be at most ${serving.model.maxSequences} (the model was loaded for that many), got ${maxBatch}`);
  const log = options.log ?? ((line: string) => console.error(line));
  const metrics = new ServerMetrics();
  const generation = new GenerationService(serving, { maxBatch, maxQueue, prefixCache: options.prefixCache, metrics });
  const timelines = new TimelineStore(options.timelines ?? 256);

  async function complete(endpoint: Endpoint, request: IncomingMessage, response: ServerResponse, arrived: number): Promise<void> {
    const body = parseJsonBody(await readBody(request, bodyLimitBytes));
    const params = endpoint === 'completions' ? parseCompletionRequest(body) : parseChatRequest(body);
    if (params.model !== serving.name) throw new ApiError(404, `the model '${params.model}' does not exist: this server runs '${serving.name}'`, 'invalid_request_error', 'model_not_found', 'model');
    const header: ResponseHeader = { id: completionId(endpoint, randomUUID().replaceAll('-', '')), created: Math.floor(Date.now() / 1000), model: serving.name };
    const recorder = new TimelineRecorder(header.id, 'server', endpoint, params.stream, arrived);
    recorder.enter('tokenize');
    const prompt = generation.encode(params.input);
    const maxTokens = generation.budget(params, prompt.length);
    recorder.timeline.promptTokens = prompt.length;
    recorder.enter('queue');

    const stream = params.stream ? new SseStream(response) : null;
    const left = new AbortController();
    response.on('close', () => {
      if (!response.writableFinished) left.abort();
    });
    const job = { prompt, maxTokens, temperature: params.temperature, topP: params.topP, seed: (params.seed ?? randomSeed()) >>> 0, stop: params.stop };
    const running = generation.start(job, recorder, stream ? (text) => stream.send(textChunk(endpoint, header, text)) : () => 0, left.signal);
    if (!running) {
      const busy = new ApiError(429, `the server is busy (${maxBatch} requests running, ${maxQueue} waiting): retry after ${retryAfterSeconds} s`, 'rate_limit_error', 'queue_full');
      return sendError(response, busy, { 'Retry-After': String(retryAfterSeconds) });
    }
    timelines.add(recorder);
    if (stream) {
      stream.open();
      if (endpoint === 'chat.completions') stream.send(roleChunk(header));
    }

    let outcome;
    try {
      outcome = await running;
    } catch (error) {
      recorder.finish(error instanceof CancelledError ? 'cancelled' : 'error');
      if (error instanceof CancelledError) return; // the client left while queued
      const failure = serverFailure(error, log);
      if (!stream) return sendError(response, failure);
      // The status line is gone: the failure travels as an error event, without [DONE].
      stream.send(failure.body);
      response.end();
      return;
    }
    const prompted = { cached: outcome.cachedTokens, computed: outcome.promptTokens - outcome.cachedTokens };
    if (outcome.finishReason === 'cancelled') return recorder.finish('cancelled', prompted);
    recorder.enter('respond');
    const counts = usage(outcome.promptTokens, outcome.completionTokens, outcome.cachedTokens);
    if (stream) {
      stream.send(textChunk(endpoint, header, '', outcome.finishReason));
      if (params.includeUsage) stream.send(usageChunk(endpoint, header, counts));
      stream.end();
    } else {
      sendJson(response, 200, responseBody(endpoint, header, outcome.text, outcome.finishReason, counts));
    }
    recorder.finish(outcome.finishReason, prompted);
  }

  const modelEntry = () => ({ id: serving.name, object: 'model', created: serving.loadedAt, owned_by: 'webgpu-inference-lab' });

  /**
   * The route a request takes; null for no such path. Each route lists its method, and whether
   * pages of other origins may read it (the lab's pipeline panel reads the models and the timelines).
   */
  function route(path: string): Route | null {
    if (path === '/metrics') {
      return {
        name: path,
        method: 'GET',
        run: (_, response) => {
          response.writeHead(200, { 'Content-Type': 'text/plain; version=0.0.4; charset=utf-8' });
          response.end(metrics.render(generation.gauges()));
        },
      };
    }
    if (path === '/v1/models') return { name: path, method: 'GET', crossOrigin: true, run: (_, response) => sendJson(response, 200, { object: 'list', data: [modelEntry()] }) };
    const model = /^\/v1\/models\/(.+)$/.exec(path);
    if (model) {
      return {
        name: '/v1/models/{id}',
        method: 'GET',
        crossOrigin: true,
        run: (_, response) => {
          const id = decodeURIComponent(model[1]);
          if (id !== serving.name) throw new ApiError(404, `the model '${id}' does not exist: this server runs '${serving.name}'`, 'invalid_request_error', 'model_not_found', 'model');
          sendJson(response, 200, modelEntry());
        },
      };
    }
    if (path === '/v1/completions') return { name: path, method: 'POST', run: (request, response, arrived) => complete('completions', request, response, arrived) };
    if (path === '/v1/chat/completions') return { name: path, method: 'POST', run: (request, response, arrived) => complete('chat.completions', request, response, arrived) };
    if (path === '/v1/requests') return { name: path, method: 'GET', crossOrigin: true, run: (_, response) => sendJson(response, 200, { object: 'list', data: timelines.list() }) };
    const timeline = /^\/v1\/requests\/([^/]+)\/timeline$/.exec(path);
    if (timeline) {
      return {
        name: '/v1/requests/{id}/timeline',
        method: 'GET',
        crossOrigin: true,
        run: (_, response) => {
          const found = timelines.get(decodeURIComponent(timeline[1]));
          if (!found) throw new ApiError(404, `no timeline for request '${timeline[1]}': the server keeps the last ${timelines.capacity}`, 'invalid_request_error', 'timeline_not_found');
          sendJson(response, 200, found);
        },
      };
    }
    return null;
  }

  async function handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const arrived = performance.now();
    const method = request.method ?? 'GET';
    const path = new URL(request.url ?? '/', 'http://server').pathname.replace(/(.)\/+$/, '$1');
    const target = route(path);
    response.on('close', () => metrics.response(target?.name ?? 'unknown', response.writableFinished ? response.statusCode : clientClosedStatus));
    // On every answer of a cross-origin route, errors included, so the page can read why it failed.
    if (target?.crossOrigin) response.setHeader('Access-Control-Allow-Origin', '*');
    try {
      if (!target) throw new ApiError(404, `no route for ${method} ${path}`, 'invalid_request_error', 'unknown_url');
      // The browser's preflight carries no key: it asks whether the key's header may be sent.
      if (target.crossOrigin && method === 'OPTIONS') return answerPreflight(response, target.method);
      if (options.apiKey !== undefined && path.startsWith('/v1/')) checkApiKey(request, options.apiKey);
      if (method !== target.method) {
        return sendError(response, new ApiError(405, `${path} takes ${target.method}, not ${method}`, 'invalid_request_error', 'method_not_allowed'), { Allow: target.method });
      }
      await target.run(request, response, arrived);
    } catch (error) {
      const failure = toApiError(error, log);
      if (response.headersSent) response.destroy();
      else sendError(response, failure);
    }
  }

  const server = createServer((request, response) => void handle(request, response));
  // Malformed HTTP never reaches the handler: answer it here rather than leave the socket hanging.
  server.on('clientError', (error, socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
    else socket.destroy(error);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => resolve());
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return {
    url: `http://${host}:${address.port}`,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((error) => (error ? reject(error) : resolve()));
        server.closeAllConnections();
      }),
  };
}

interface Route {
  /** The route as /metrics counts it (ids as {id}). */
  name: string;
  method: string;
  /** Readable by pages of any origin, with the API key in Authorization. */
  crossOrigin?: boolean;
  run: (request: IncomingMessage, response: ServerResponse, arrived: number) => Promise<void> | void;
}

/** How long a browser may reuse a preflight's answer, seconds. */
const preflightMaxAgeSeconds = 600;

function answerPreflight(response: ServerResponse, method: string): void {
  response.writeHead(204, {
    'Access-Control-Allow-Methods': method,
    'Access-Control-Allow-Headers': 'Authorization',
    'Access-Control-Max-Age': String(preflightMaxAgeSeconds),
  });
  response.end();
}

/** The status logged for a response whose client went away before it ended (nginx's convention). */
const clientClosedStatus = 499;

function randomSeed(): number {
  return Math.floor(Math.random() * 2 ** 32);
}

/**
 * A failure before generation: an ApiError as is, a RequestError from the engine's checks is the
 * client's (400), anything else is ours (500, logged).
 */
function toApiError(error: unknown, log: (line: string) => void): ApiError {
  if (error instanceof ApiError) return error;
  if (error instanceof RequestError) return invalidRequest(error.message);
  return serverFailure(error, log);
}

/** 500, logged: a failure of the server or the GPU (during generation every failure is one, whatever its class). */
function serverFailure(error: unknown, log: (line: string) => void): ApiError {
  const message = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  log(`server error: ${error instanceof Error && error.stack ? error.stack : message}`);
  return new ApiError(500, `the server failed to run the request: ${message}`, 'server_error', 'internal_error');
}
