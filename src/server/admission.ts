// Admission control in front of the scheduler: at most `maxBatch` requests are with the scheduler
// (running, or about to be admitted at its next step); up to `maxQueue` more wait here, first come
// first served; past that a request is refused (the server answers 429). Keeping the queue here
// rather than in the scheduler makes queueing time a measured stage of each request, and the
// pool is sized for maxBatch whole contexts, so what reaches the scheduler is admitted at once.
import { CancelledError } from '../engine/errors.ts';
import type { BatchRequest, Scheduler, SequenceResult } from '../engine/runtime/scheduler.ts';

interface Queued {
  start(): void;
  cancel(): void;
}

export interface AdmissionHooks {
  /** The request left the queue and went to the scheduler. */
  onStart(): void;
  onToken(token: number): void;
}

export class AdmissionQueue {
  readonly #scheduler: Scheduler;
  readonly #maxBatch: number;
  readonly #maxQueue: number;
  readonly #queue: Queued[] = [];

  constructor(scheduler: Scheduler, maxBatch: number, maxQueue: number) {
    this.#scheduler = scheduler;
    this.#maxBatch = maxBatch;
    this.#maxQueue = maxQueue;
  }

  /** Requests waiting for a batch slot. */
  get depth(): number {
    return this.#queue.length + this.#scheduler.waitingCount;
  }

  /**
   * Runs `request` through the scheduler as soon as a batch slot is free, or null when the queue is
   * full. Aborting `signal` while it waits here rejects with CancelledError; while it runs, the
   * scheduler ends it and frees its pages.
   */
  submit(request: BatchRequest, hooks: AdmissionHooks, signal: AbortSignal): Promise<SequenceResult> | null {
    if (this.#queue.length >= this.#maxQueue && !this.#slotFree()) return null;
    return new Promise<SequenceResult>((resolve, reject) => {
      const entry: Queued = {
        start: () => {
          signal.removeEventListener('abort', entry.cancel);
          hooks.onStart();
          // submit() queues synchronously, so the scheduler's counts include it before the next slot check.
          this.#scheduler
            .submit(request, hooks.onToken, signal)
            .then(resolve, reject)
            .finally(() => this.drain());
        },
        cancel: () => {
          this.#queue.splice(this.#queue.indexOf(entry), 1);
          reject(new CancelledError('cancelled while queued'));
        },
      };
      if (signal.aborted) return reject(new CancelledError('cancelled before it was queued'));
      signal.addEventListener('abort', entry.cancel, { once: true });
      this.#queue.push(entry);
      this.drain();
    });
  }

  /** Starts queued requests while batch slots are free: after every scheduler step and whenever a request ends. */
  drain(): void {
    while (this.#queue.length > 0 && this.#slotFree()) this.#queue.shift()!.start();
  }

  #slotFree(): boolean {
    return this.#scheduler.runningCount + this.#scheduler.waitingCount < this.#maxBatch;
  }
}
