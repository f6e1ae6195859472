// The server keeps the timelines (engine/timeline.ts) of its last N requests and serves each at
// GET /v1/requests/{id}/timeline while it runs and after it ends, and a list of them at
// GET /v1/requests so a client can pick one without knowing its id.
import type { RequestTimeline, TimelineRecorder } from '../engine/timeline.ts';

/** One entry of GET /v1/requests: enough to pick a request, not its stages or tokens. */
export interface RequestSummary {
  id: string;
  endpoint: RequestTimeline['endpoint'];
  stream: boolean;
  /** Wall-clock arrival, ms since the epoch. */
  arrivedAt: number;
  finished: boolean;
  outcome: RequestTimeline['outcome'];
  promptTokens: number;
  /** Tokens generated so far. */
  generatedTokens: number;
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

  /** Every kept request, the most recently admitted first. */
  list(): RequestSummary[] {
    return [...this.#recorders.values()].reverse().map(({ timeline: t }) => ({
      id: t.id,
      endpoint: t.endpoint,
      stream: t.stream,
      arrivedAt: t.arrivedAt,
      finished: t.finished,
      outcome: t.outcome,
      promptTokens: t.promptTokens,
      generatedTokens: t.tokens.length,
    }));
  }
}
