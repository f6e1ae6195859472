// The server's numbers in Prometheus's text format (GET /metrics): gauges read from the scheduler
// when scraped, counters and histograms kept as requests finish.

/** Cumulative-bucket histogram, as Prometheus expects: each bucket counts observations <= its bound. */
export class Histogram {
  readonly #bounds: readonly number[];
  readonly #counts: number[];
  #sum = 0;
  #count = 0;

  constructor(bounds: readonly number[]) {
    this.#bounds = bounds;
    this.#counts = bounds.map(() => 0);
  }

  observe(value: number): void {
    this.#bounds.forEach((bound, i) => {
      if (value <= bound) this.#counts[i]++;
    });
    this.#sum += value;
    this.#count++;
  }

  lines(name: string): string[] {
    return [
      ...this.#bounds.map((bound, i) => `${name}_bucket{le="${bound}"} ${this.#counts[i]}`),
      `${name}_bucket{le="+Inf"} ${this.#count}`,
      `${name}_sum ${this.#sum}`,
      `${name}_count ${this.#count}`,
    ];
  }
}

/** Events per second over a sliding window of whole seconds (the current, partial second included). */
export class RateWindow {
  readonly #seconds: number;
  readonly #counts: Float64Array;
  readonly #stamps: Float64Array;

  constructor(seconds: number) {
    this.#seconds = seconds;
    this.#counts = new Float64Array(seconds);
    this.#stamps = new Float64Array(seconds).fill(-1);
  }

  add(count: number, nowMs = performance.now()): void {
    const second = Math.floor(nowMs / 1000);
    const slot = second % this.#seconds;
    if (this.#stamps[slot] !== second) {
      this.#stamps[slot] = second;
      this.#counts[slot] = 0;
    }
    this.#counts[slot] += count;
  }

  perSecond(nowMs = performance.now()): number {
    const second = Math.floor(nowMs / 1000);
    let total = 0;
    this.#stamps.forEach((stamp, slot) => {
      if (stamp > second - this.#seconds) total += this.#counts[slot];
    });
    return total / this.#seconds;
  }
}

/** What the scheduler and page pool hold at scrape time. */
export interface SchedulerGauges {
  /** Requests waiting for a batch slot (the server's queue and the scheduler's). */
  queueDepth: number;
  runningSequences: number;
  /** Pages running sequences hold (shared pages once); pages only the prefix cache holds; free pages. */
  kvPagesUsed: number;
  kvPagesCached: number;
  kvPagesFree: number;
  kvPagesTotal: number;
}

// TTFT spans queueing and prefill (milliseconds to many seconds); TPOT is one batched step.
const ttftBuckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
const tpotBuckets = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];
const rateWindowSeconds = 10;

export class ServerMetrics {
  readonly ttft = new Histogram(ttftBuckets);
  readonly tpot = new Histogram(tpotBuckets);
  readonly #generated = new RateWindow(rateWindowSeconds);
  readonly #requests = new Map<string, number>();
  #generatedTotal = 0;
  #promptTotal = 0;
  #cachedTotal = 0;

  /** Counts a response by route and status (429s and errors included). */
  response(route: string, status: number): void {
    const key = `route="${route}",status="${status}"`;
    this.#requests.set(key, (this.#requests.get(key) ?? 0) + 1);
  }

  /** One generated token (for the rate and the total). */
  token(): void {
    this.#generated.add(1);
    this.#generatedTotal++;
  }

  /** A finished generation: its prompt and timings in milliseconds (null when there is none). */
  completion(promptTokens: number, cachedTokens: number, ttftMs: number | null, tpotMs: number | null): void {
    this.#promptTotal += promptTokens;
    this.#cachedTotal += cachedTokens;
    if (ttftMs !== null) this.ttft.observe(ttftMs / 1000);
    if (tpotMs !== null) this.tpot.observe(tpotMs / 1000);
  }

  render(gauges: SchedulerGauges): string {
    const metric = (name: string, type: 'gauge' | 'counter' | 'histogram', help: string, lines: string[]) => [`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`, ...lines];
    const value = (name: string, type: 'gauge' | 'counter', help: string, v: number) => metric(name, type, help, [`${name} ${v}`]);
    return [
      ...value('lab_queue_depth', 'gauge', 'Requests waiting for a batch slot.', gauges.queueDepth),
      ...value('lab_running_sequences', 'gauge', 'Sequences in the running batch.', gauges.runningSequences),
      ...value('lab_kv_pages_used', 'gauge', 'KV pages held by running sequences (a shared page counted once).', gauges.kvPagesUsed),
      ...value('lab_kv_pages_cached', 'gauge', 'KV pages held only by the prefix cache (reclaimable).', gauges.kvPagesCached),
      ...value('lab_kv_pages_free', 'gauge', 'KV pages on the free list.', gauges.kvPagesFree),
      ...value('lab_kv_pages_total', 'gauge', 'KV pages in the pool.', gauges.kvPagesTotal),
      ...value('lab_tokens_per_second', 'gauge', `Generated tokens per second over the last ${rateWindowSeconds} s, all requests together.`, this.#generated.perSecond()),
      ...value('lab_generated_tokens_total', 'counter', 'Tokens generated.', this.#generatedTotal),
      ...value('lab_prompt_tokens_total', 'counter', 'Prompt tokens of finished requests.', this.#promptTotal),
      ...value('lab_cached_prompt_tokens_total', 'counter', 'Prompt tokens served from the prefix cache.', this.#cachedTotal),
      ...metric('lab_requests_total', 'counter', 'Responses by route and HTTP status.', [...this.#requests].map(([labels, n]) => `lab_requests_total{${labels}} ${n}`)),
      ...metric('lab_time_to_first_token_seconds', 'histogram', 'From arrival to the first generated token.', this.ttft.lines('lab_time_to_first_token_seconds')),
      ...metric('lab_time_per_output_token_seconds', 'histogram', 'Mean time between generated tokens after the first, per request.', this.tpot.lines('lab_time_per_output_token_seconds')),
      '',
    ].join('\n');
  }
}
