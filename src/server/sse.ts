// Server-Sent Events as OpenAI streams them: one `data: {json}` event per chunk, then `data: [DONE]`.
import type { ServerResponse } from 'node:http';

export class SseStream {
  readonly #response: ServerResponse;

  constructor(response: ServerResponse) {
    this.#response = response;
  }

  /** Sends the headers at once, so the client sees the stream open before the first token. */
  open(headers: Record<string, string> = {}): void {
    this.#response.writeHead(200, { 'Content-Type': 'text/event-stream; charset=utf-8', 'Cache-Control': 'no-cache', Connection: 'keep-alive', ...headers });
    this.#response.flushHeaders();
  }

  /** Writes one event and returns how long the write call took (ms): the stream stage of the timeline. */
  send(data: unknown): number {
    const started = performance.now();
    if (!this.#response.destroyed) this.#response.write(`data: ${JSON.stringify(data)}\n\n`);
    return performance.now() - started;
  }

  /** The closing `[DONE]` event. */
  end(): void {
    if (!this.#response.destroyed) this.#response.end('data: [DONE]\n\n');
  }
}
