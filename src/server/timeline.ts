// The server keeps the timelines (engine/timeline.ts) of its last N requests and serves each at
// GET /v1/requests/{id}/timeline while it runs and after it ends.
import type { RequestTimeline, TimelineRecorder } from '../engine/timeline.ts';

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
