import { createServer, type Server } from 'node:http';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { ConfigError } from '../platform/config.js';
import { closeServer, listen } from '../platform/http/server.js';
import { checkSubgraphs, discoverSubgraphs, subgraphVariable } from './subgraph-health.js';

describe('discoverSubgraphs', () => {
  const names = ['identity', 'story', 'video-jobs'];

  it('reads each subgraph URL, trims trailing slashes, and takes per-subgraph timeouts over the default', () => {
    const env = {
      SUBGRAPH_IDENTITY_URL: 'http://identity:4001',
      SUBGRAPH_STORY_URL: ' https://story.internal:8443/// ',
      SUBGRAPH_VIDEO_JOBS_URL: 'http://gateway-proxy/video',
      SUBGRAPH_STORY_TIMEOUT_MS: '5000',
    };
    expect(discoverSubgraphs(env, names, { defaultTimeoutMs: 2000 })).toEqual({
      urls: { identity: 'http://identity:4001', story: 'https://story.internal:8443', 'video-jobs': 'http://gateway-proxy/video' },
      timeoutsMs: { identity: 2000, story: 5000, 'video-jobs': 2000 },
    });
  });

  it('fails with one error naming every missing or invalid setting', () => {
    const env = {
      SUBGRAPH_IDENTITY_URL: 'http://identity:4001/graphql',
      SUBGRAPH_IDENTITY_TIMEOUT_MS: '2s',
      SUBGRAPH_VIDEO_JOBS_URL: 'ftp://video',
      SUBGRAPH_VIDEO_JOBS_TIMEOUT_MS: '0',
    };
    let thrown: unknown;
    try {
      discoverSubgraphs(env, names, { defaultTimeoutMs: 2000 });
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(ConfigError);
    expect((thrown as ConfigError).problems).toEqual([
      'SUBGRAPH_IDENTITY_URL: give the base URL, without /graphql',
      'SUBGRAPH_IDENTITY_TIMEOUT_MS: must be a whole number of milliseconds, 1 or more',
      "SUBGRAPH_STORY_URL: not set (the subgraph's base URL, e.g. http://story:4001)",
      'SUBGRAPH_VIDEO_JOBS_URL: must be an http:// or https:// URL',
      'SUBGRAPH_VIDEO_JOBS_TIMEOUT_MS: must be a whole number of milliseconds, 1 or more',
    ]);
    expect((thrown as Error).message).toContain('SUBGRAPH_STORY_URL');
  });

  it('rejects what is not a URL, queries and credentials', () => {
    const problems = (url: string) => {
      try {
        discoverSubgraphs({ SUBGRAPH_STORY_URL: url }, ['story'], { defaultTimeoutMs: 1 });
        return [];
      } catch (error) {
        return (error as ConfigError).problems;
      }
    };
    expect(problems('story:4001')).toEqual(['SUBGRAPH_STORY_URL: must be an http:// or https:// URL']);
    expect(problems('not a url')).toEqual(['SUBGRAPH_STORY_URL: not a URL']);
    expect(problems('http://story:4001?x=1')).toEqual(['SUBGRAPH_STORY_URL: must not have a query or fragment']);
    expect(problems('http://u:p@story:4001')).toEqual(['SUBGRAPH_STORY_URL: must not carry credentials']);
  });

  it('names the variables after the subgraph, upper-cased, with anything else as _', () => {
    expect(subgraphVariable('video-jobs', 'TIMEOUT_MS')).toBe('SUBGRAPH_VIDEO_JOBS_TIMEOUT_MS');
  });
});

describe('checkSubgraphs', () => {
  const servers: Server[] = [];
  afterEach(async () => {
    for (const server of servers.splice(0)) {
      server.closeAllConnections();
      await closeServer(server);
    }
  });

  /** A /health endpoint that answers `fails` times with 503, then 200; or never answers. */
  async function healthServer(behaviour: { fails: number } | 'hang') {
    const seen = { probes: 0 };
    const server = createServer((req, res) => {
      seen.probes += 1;
      if (req.url !== '/health' && req.url !== '/ready') return void res.writeHead(404).end();
      if (behaviour === 'hang') return;
      res.writeHead(seen.probes > behaviour.fails ? 200 : 503, { 'content-type': 'application/json' }).end('{}');
    });
    servers.push(server);
    return { url: await listen(server, 0, '127.0.0.1'), seen };
  }

  /** A loopback URL nothing listens on. */
  async function refusedUrl() {
    const server = createServer();
    const url = await listen(server, 0, '127.0.0.1');
    await closeServer(server);
    return url;
  }

  function capturedLogger() {
    const lines: Array<Record<string, unknown>> = [];
    const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
    return { logger, lines, messages: () => lines.map((l) => l.msg) };
  }

  it('waits until every subgraph answers 200, logging who is up and who is still awaited', async () => {
    const identity = await healthServer({ fails: 0 });
    const story = await healthServer({ fails: 3 });
    const { logger, lines, messages } = capturedLogger();

    const health = await checkSubgraphs({ identity: identity.url, story: story.url }, { timeoutMs: 500, deadlineMs: 10_000, intervalMs: 10, logger });

    expect(health).toEqual({
      identity: { up: true, attempts: 1, upAfterMs: expect.any(Number) },
      story: { up: true, attempts: 4, upAfterMs: expect.any(Number) },
    });
    expect(story.seen.probes).toBe(4);
    expect(lines.find((l) => l.msg === 'waiting for subgraphs')).toMatchObject({ up: ['identity'], waitingFor: { story: 'HTTP 503' } });
    expect(messages().at(-1)).toBe('all subgraphs healthy');
  });

  it('probes another path when asked (readiness rather than liveness)', async () => {
    const story = await healthServer({ fails: 0 });
    const { logger } = capturedLogger();
    const health = await checkSubgraphs({ story: story.url }, { timeoutMs: 500, deadlineMs: 1_000, path: '/ready', logger });
    expect(health.story).toMatchObject({ up: true, attempts: 1 });
    const missing = await checkSubgraphs({ story: story.url }, { timeoutMs: 500, deadlineMs: 50, path: '/nope', intervalMs: 10, logger });
    expect(missing.story).toMatchObject({ up: false, problem: 'HTTP 404' });
  });

  it('gives up at the deadline without throwing, reporting why each one is down', async () => {
    const identity = await healthServer({ fails: 0 });
    const hanging = await healthServer('hang');
    const { logger, lines } = capturedLogger();

    const started = performance.now();
    const health = await checkSubgraphs(
      { identity: identity.url, story: await refusedUrl(), video: hanging.url },
      { timeoutMs: 100, deadlineMs: 400, intervalMs: 20, logger },
    );

    expect(performance.now() - started).toBeLessThan(2_000);
    expect(health.identity).toMatchObject({ up: true, attempts: 1 });
    expect(health.story).toMatchObject({ up: false, problem: 'ECONNREFUSED' });
    expect(health.story!.attempts).toBeGreaterThan(1);
    expect(health.video).toMatchObject({ up: false, problem: expect.stringMatching(/^timeout after \d+ ms$/) });
    expect(lines.at(-1)).toMatchObject({ level: 40, msg: expect.stringContaining('still down at the deadline'), up: ['identity'], down: { story: 'ECONNREFUSED', video: expect.stringMatching(/^timeout/) } });
  });
});
