// Reading request timelines from this project's server (`npm run serve`) in the page: the list of
// recent requests (GET /v1/requests) and one request's timeline (GET /v1/requests/{id}/timeline).
// The server answers pages of other origins on these routes, so the lab can read a server it did
// not come from.
import type { RequestTimeline } from '../engine/timeline.ts';
import type { RequestSummary } from '../server/timeline.ts';

export type { RequestSummary };

export interface ServerTarget {
  /** The server's address, as `npm run serve` prints it; a trailing /v1 (an OpenAI base URL) is accepted. */
  url: string;
  /** Sent as `Authorization: Bearer KEY`; '' sends none. */
  apiKey: string;
}

/** A failure reading the server, with the reason in words (the server's own message when it gave one). */
export class ServerTimelineError extends Error {
  override name = 'ServerTimelineError';

  /** `status` is the HTTP status, or null when no answer came (unreachable, or refused by the browser). */
  constructor(
    message: string,
    readonly status: number | null,
  ) {
    super(message);
  }
}

/** "http://127.0.0.1:8080" from what a user typed: trailing slashes and /v1 dropped; only http(s). */
export function serverRoot(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url.trim());
  } catch {
    throw new ServerTimelineError(`"${url}" is not a URL: give the server's address, such as http://127.0.0.1:8080`, null);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new ServerTimelineError(`"${url}" is not an http(s) address`, null);
  return `${parsed.origin}${parsed.pathname.replace(/\/+$/, '').replace(/\/v1$/, '')}`;
}

async function getJson(target: ServerTarget, path: string): Promise<unknown> {
  const url = `${serverRoot(target.url)}${path}`;
  let response: Response;
  try {
    response = await fetch(url, { headers: target.apiKey ? { Authorization: `Bearer ${target.apiKey}` } : {} });
  } catch (error) {
    // The browser hides why: the server is down, or it does not let this page read it (CORS).
    const reason = error instanceof Error ? error.message : String(error);
    throw new ServerTimelineError(`could not reach ${url} (${reason}): is the server running, and is it this project's server?`, null);
  }
  const text = await response.text();
  if (!response.ok) throw new ServerTimelineError(`${url} answered ${response.status}: ${errorMessage(text) ?? (text.slice(0, 200) || response.statusText)}`, response.status);
  try {
    return JSON.parse(text);
  } catch {
    throw new ServerTimelineError(`${url} did not answer with JSON`, response.status);
  }
}

/** The message of an OpenAI-style error body, if it is one. */
function errorMessage(text: string): string | null {
  try {
    const body = JSON.parse(text) as { error?: { message?: unknown } };
    return typeof body.error?.message === 'string' ? body.error.message : null;
  } catch {
    return null;
  }
}

/** The requests the server keeps timelines of, the most recent first. */
export async function fetchRequestList(target: ServerTarget): Promise<RequestSummary[]> {
  const body = (await getJson(target, '/v1/requests')) as { data?: unknown };
  if (!Array.isArray(body.data)) throw new ServerTimelineError('the server answered /v1/requests without a list of requests', 200);
  return body.data as RequestSummary[];
}

export async function fetchTimeline(target: ServerTarget, id: string): Promise<RequestTimeline> {
  const timeline = (await getJson(target, `/v1/requests/${encodeURIComponent(id)}/timeline`)) as RequestTimeline;
  if (!Array.isArray(timeline.stages) || !Array.isArray(timeline.tokens)) throw new ServerTimelineError(`the server answered the timeline of '${id}' without stages and tokens`, 200);
  return timeline;
}

/** The latest request's timeline; null when the server has served none yet. */
export async function fetchLatestTimeline(target: ServerTarget): Promise<RequestTimeline | null> {
  const [latest] = await fetchRequestList(target);
  return latest ? fetchTimeline(target, latest.id) : null;
}
