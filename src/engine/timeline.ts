// Where one request's time goes, stage by stage and token by token, measured with performance.now():
// the data of the lab's request-to-token pipeline view. The HTTP server records one per request
// (GET /v1/requests/{id}/timeline); the engine records one per generation in the page.

/**
 * The stages follow each other without gaps, from arrival to the last byte:
 *   parse     reading the body and checking it against the wire format (server)
 *   tokenize  the chat template (chat requests) and the tokenizer
 *   queue     waiting for a batch slot (server's bounded queue) or for the engine (in the page)
 *   prefill   from the start of the model's work to the first token: the prompt tokens the prefix
 *             cache does not hold are computed (on the server in chunks, sharing steps with other
 *             sequences' decodes) and the first token is sampled on the GPU
 *   decode    from the first token to the last, one forward step per token (or per speculative pass)
 *   respond   from the last token to the end of the response (the JSON body or [DONE]; in the page,
 *             the result's trip from the worker)
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
  /** The step that produced it, and the rows that step ran for all sequences together (a speculative pass: its guesses). */
  step: number;
  batchRows: number;
  /** Turning the token into text (UTF-8 held until complete) and checking it for stop strings. */
  detokenizeMs: number;
  /** Writing its server-sent event, or posting it from the worker (0 when not streamed, or when its text was held back). */
  writeMs: number;
  /** Text released to the client with this token ('' while a character or a stop string is incomplete). */
  text: string;
}

export type TimelineOutcome = 'stop' | 'length' | 'cancelled' | 'error';

export interface RequestTimeline {
  /** The completion id (the response's `id`), or the page's generation number. */
  id: string;
  /** Who measured it: the HTTP server, or the engine in the page. */
  source: 'server' | 'engine';
  /** 'completions' or 'chat' on the server; 'generate' in the page. */
  endpoint: string;
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

  /** `origin` is performance.now() when the request arrived; the first stage (`first`) starts there. */
  constructor(id: string, source: RequestTimeline['source'], endpoint: string, stream: boolean, origin: number, first: TimelineStageName = 'parse') {
    this.#origin = origin;
    this.timeline = {
      id,
      source,
      endpoint,
      stream,
      arrivedAt: Date.now() - (performance.now() - origin),
      finished: false,
      outcome: null,
      promptTokens: 0,
      cachedPromptTokens: null,
      computedPromptTokens: null,
      stages: [{ name: first, startMs: 0, endMs: this.now() }],
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
