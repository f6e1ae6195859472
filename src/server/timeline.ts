// Where one request's time goes, stage by stage and token by token, measured with performance.now()
// on the server: the data of the lab's request-to-token pipeline view. The server keeps the last N
// timelines and serves each at GET /v1/requests/{id}/timeline while it runs and after it ends.
import type { Endpoint } from './openai-request.ts';

/**
 * The stages follow each other without gaps, from arrival to the last byte:
 *   parse     reading the body and checking it against the wire format
 *   tokenize  the chat template (chat requests) and the tokenizer
 *   queue     waiting in the server's bounded queue for a batch slot
 *   prefill   from submission to the scheduler to the first token: the scheduler admits the request
 *             at its next step, computes the prompt tokens the prefix cache does not hold (in
 *             chunks, sharing steps with other sequences' decodes) and samples on the GPU
 *   decode    from the first token to the last, one batched step per token
 *   respond   from the last token to the end of the response (the JSON body, or [DONE])
 */
export type TimelineStageName = 'parse' | 'tokenize' | 'queue' | 'prefill' | 'decode' | 'respond';

export interface TimelineStage {
  name: TimelineStageName;
  /** Milliseconds since the request arrived. */
  startMs: number;
  endMs: number;
}

/** One generated token. */
export interface TimelineToken {
  token: number;
  /** When the scheduler handed it over (the end of its step), ms since arrival. */
  atMs: number;
  /** Since the previous token of this request (the first: since submission to the scheduler). */
  stepMs: number;
  /** The scheduler step that produced it, and the rows that step ran for all sequences together. */
  step: number;
  batchRows: number;
  /** Turning the token into text (UTF-8 held until complete) and checking it for stop strings. */
  detokenizeMs: number;
  /** Writing its server-sent event (0 when not streamed, or when its text was held back). */
  writeMs: number;
  /** Text released to the client with this token ('' while a character or a stop string is incomplete). */
  text: string;
}

export type TimelineOutcome = 'stop' | 'length' | 'cancelled' | 'error';

export interface RequestTimeline {
  /** The completion id (the response's `id`). */
  id: string;
  endpoint: Endpoint;
  stream: boolean;
  /** Wall-clock arrival (ms since the epoch), to place requests against each other. */
  arrivedAt: number;
  /** False while the request is still running: later stages and tokens are yet to come. */
  finished: boolean;
  /** The finish reason sent to the client, 'cancelled' when the client left, 'error' on a failure. */
  outcome: TimelineOutcome | null;
  promptTokens: number;
  /** Prompt tokens whose K/V came from the prefix cache, and those prefill computed (known at the end). */
  cachedPromptTokens: number | null;
  computedPromptTokens: number | null;
  stages: TimelineStage[];
  tokens: TimelineToken[];
}

/** Builds one request's timeline as it runs. */
export class TimelineRecorder {
  readonly timeline: RequestTimeline;
  readonly #origin: number;

  /** `origin` is performance.now() when the request arrived; the parse stage starts there. */
  constructor(id: string, endpoint: Endpoint, stream: boolean, origin: number) {
    this.#origin = origin;
    this.timeline = {
      id,
      endpoint,
      stream,
      arrivedAt: Date.now() - (performance.now() - origin),
      finished: false,
      outcome: null,
      promptTokens: 0,
      cachedPromptTokens: null,
      computedPromptTokens: null,
      stages: [{ name: 'parse', startMs: 0, endMs: this.now() }],
      tokens: [],
    };
  }

  /** Milliseconds since arrival. */
  now(): number {
    return performance.now() - this.#origin;
  }

  /** Ends the current stage and starts `name` at `now` (ms since arrival; stages are contiguous). */
  enter(name: TimelineStageName, now = this.now()): void {
    const stages = this.timeline.stages;
    stages[stages.length - 1].endMs = now;
    stages.push({ name, startMs: now, endMs: now });
  }

  /** Keeps the open stage's end current, so a running request's timeline reads up to now. */
  touch(): void {
    this.timeline.stages[this.timeline.stages.length - 1].endMs = this.now();
  }

  token(entry: TimelineToken): void {
    this.timeline.tokens.push(entry);
    this.touch();
  }

  finish(outcome: TimelineOutcome, prompt?: { cached: number; computed: number }): void {
    this.touch();
    this.timeline.finished = true;
    this.timeline.outcome = outcome;
    if (prompt) {
      this.timeline.cachedPromptTokens = prompt.cached;
      this.timeline.computedPromptTokens = prompt.computed;
    }
  }
}

/** The timelines of the last `capacity` requests, by completion id. */
export class TimelineStore {
  readonly #recorders = new Map<string, TimelineRecorder>();

  constructor(readonly capacity: number) {}

  add(recorder: TimelineRecorder): void {
    this.#recorders.set(recorder.timeline.id, recorder);
    if (this.#recorders.size > this.capacity) this.#recorders.delete(this.#recorders.keys().next().value!);
  }

  /** The timeline so far (a running request's open stage reaching to now). */
  get(id: string): RequestTimeline | undefined {
    const recorder = this.#recorders.get(id);
    if (recorder && !recorder.timeline.finished) recorder.touch();
    return recorder?.timeline;
  }
}
