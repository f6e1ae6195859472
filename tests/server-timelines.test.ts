// The page's reader of server timelines against a real server (stories260K, with an API key): the
// list of recent requests, one request's timeline, the latest one, and each way reading can fail.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fetchLatestTimeline, fetchRequestList, fetchTimeline, serverRoot, ServerTimelineError, type ServerTarget } from '../src/app/server-timelines.ts';
import { startServer, type RunningServer } from '../src/server/server.ts';
import type { ServingModel } from '../src/server/serving-model.ts';
import { loadStories, post } from './helpers/server.ts';

const apiKey = 'timeline-key';

async function failure(reading: Promise<unknown>): Promise<ServerTimelineError> {
  const error = await reading.then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ServerTimelineError);
  return error as ServerTimelineError;
}

describe('serverRoot', () => {
  it('takes the address as served or as an OpenAI base URL, and refuses what is not http(s)', () => {
    expect(serverRoot('http://127.0.0.1:8080')).toBe('http://127.0.0.1:8080');
    expect(serverRoot(' http://127.0.0.1:8080/v1/ ')).toBe('http://127.0.0.1:8080');
    expect(serverRoot('https://lab.example/proxy/v1')).toBe('https://lab.example/proxy');
    expect(() => serverRoot('127.0.0.1 8080')).toThrow(/is not a URL/);
    expect(() => serverRoot('ftp://lab.example')).toThrow(/is not an http\(s\) address/);
  });
});

describe('reading timelines from a server', () => {
  let serving: ServingModel;
  let server: RunningServer;
  let target: ServerTarget;

  beforeAll(async () => {
    serving = await loadStories(2, 128);
    server = await startServer({ serving, maxBatch: 2, maxQueue: 2, apiKey });
    target = { url: `${server.url}/v1`, apiKey };
  });

  afterAll(async () => {
    await server?.close();
    serving?.dispose();
  });

  it('reads nothing from a server that has served nothing, then the requests newest first and their timelines', async () => {
    expect(await fetchRequestList(target)).toEqual([]);
    expect(await fetchLatestTimeline(target)).toBeNull();

    const ids: string[] = [];
    for (const [prompt, tokens] of [
      ['Tom went to', 1],
      ['Once upon a time', 2],
    ] as const) {
      const response = await post(`${server.url}/v1/completions`, { model: 'stories260K', prompt, max_tokens: tokens, temperature: 0 }, apiKey);
      ids.push(((await response.json()) as { id: string }).id);
    }
    const list = await fetchRequestList(target);
    expect(list.map((r) => [r.id, r.generatedTokens, r.outcome])).toEqual([
      [ids[1], 2, 'length'],
      [ids[0], 1, 'length'],
    ]);

    const older = await fetchTimeline(target, ids[0]);
    expect(older).toMatchObject({ id: ids[0], source: 'server', endpoint: 'completions', finished: true });
    expect(older.tokens).toHaveLength(1);
    expect(older.stages.map((s) => s.name)).toEqual(['parse', 'tokenize', 'queue', 'prefill', 'decode', 'respond']);
    const latest = await fetchLatestTimeline({ url: server.url, apiKey });
    expect(latest?.id).toBe(ids[1]);
    expect(latest?.tokens).toHaveLength(2);
  });

  it("gives the server's reason when it refuses, and says when it cannot be reached", async () => {
    const wrongKey = await failure(fetchRequestList({ url: server.url, apiKey: 'wrong' }));
    expect(wrongKey.status).toBe(401);
    expect(wrongKey.message).toBe(`${server.url}/v1/requests answered 401: incorrect API key provided`);
    const noKey = await failure(fetchRequestList({ url: server.url, apiKey: '' }));
    expect(noKey.message).toMatch(/answered 401: you didn't provide an API key/);

    const unknown = await failure(fetchTimeline(target, 'cmpl-gone'));
    expect(unknown.status).toBe(404);
    expect(unknown.message).toMatch(/answered 404: no timeline for request 'cmpl-gone': the server keeps the last 256/);

    const closed = await startServer({ serving, maxBatch: 1, maxQueue: 0 });
    await closed.close();
    const unreachable = await failure(fetchRequestList({ url: closed.url, apiKey: '' }));
    expect(unreachable.status).toBeNull();
    expect(unreachable.message).toMatch(new RegExp(`^could not reach ${closed.url}/v1/requests \\(.+\\): is the server running`));
  });
});
