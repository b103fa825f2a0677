import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { Logger } from '../log.js';
import { healthRoute, readyRoute, type ReadinessCheck } from './probes.js';
import { closeServer, createHttpServer, listen, type Handler } from './server.js';

let server: Server | undefined;

afterEach(async () => {
  vi.useRealTimers();
  if (server) await closeServer(server);
  server = undefined;
});

async function serve(handler: Handler): Promise<string> {
  server = createHttpServer({ '/probe': handler }, recordingLogger().logger);
  return `${await listen(server, 0, '127.0.0.1')}/probe`;
}

async function get(url: string): Promise<{ status: number; contentType: string | null; body: unknown }> {
  const response = await fetch(url);
  return { status: response.status, contentType: response.headers.get('content-type'), body: await response.json() };
}

/** A logger that records the readiness warnings. */
function recordingLogger() {
  const warnings: Array<{ check: unknown; message: unknown }> = [];
  const logger = {
    warn: (fields: { check?: unknown; err?: unknown }) => void warnings.push({ check: fields.check, message: fields.err instanceof Error ? fields.err.message : fields.err }),
    error: () => undefined,
    info: () => undefined,
  } as unknown as Logger;
  return { logger, warnings };
}

const component = { service: 'story' };

describe('healthRoute', () => {
  it('answers 200 with status ok and the component', async () => {
    const response = await get(await serve(healthRoute({ service: 'gateway', version: '1.2.3' })));
    expect(response).toEqual({ status: 200, contentType: 'application/json; charset=utf-8', body: { status: 'ok', service: 'gateway', version: '1.2.3' } });
  });
});

describe('readyRoute', () => {
  it('answers 200 when every check passes, naming each one ok', async () => {
    const { logger, warnings } = recordingLogger();
    const checks = { database: vi.fn(async () => undefined), nats: vi.fn(async () => 'pong') };
    const response = await get(await serve(readyRoute(component, checks, { stopping: () => false, logger })));
    expect(response.status).toBe(200);
    expect(response.body).toEqual({ status: 'ready', service: 'story', checks: { database: 'ok', nats: 'ok' } });
    expect(checks.database).toHaveBeenCalledTimes(1);
    expect(checks.nats).toHaveBeenCalledTimes(1);
    expect(warnings).toEqual([]);
  });

  it("answers 503 naming a failing check's message, the others still ok", async () => {
    const { logger, warnings } = recordingLogger();
    const checks: Record<string, ReadinessCheck> = {
      database: async () => {
        throw new Error('connect ECONNREFUSED 127.0.0.1:5432');
      },
      migrations: () => Promise.reject('2 migrations pending'),
      nats: async () => undefined,
    };
    const response = await get(await serve(readyRoute(component, checks, { stopping: () => false, logger })));
    expect(response.status).toBe(503);
    expect(response.body).toEqual({
      status: 'unavailable',
      service: 'story',
      checks: { database: 'connect ECONNREFUSED 127.0.0.1:5432', migrations: '2 migrations pending', nats: 'ok' },
    });
    expect(warnings).toEqual([
      { check: 'database', message: 'connect ECONNREFUSED 127.0.0.1:5432' },
      { check: 'migrations', message: '2 migrations pending' },
    ]);
  });

  it('answers 503 for a check that throws before returning a promise', async () => {
    const checks: Record<string, ReadinessCheck> = {
      broken: () => {
        throw new Error('not configured');
      },
    };
    const response = await get(await serve(readyRoute(component, checks, { stopping: () => false, logger: recordingLogger().logger })));
    expect(response.status).toBe(503);
    expect(response.body).toEqual({ status: 'unavailable', service: 'story', checks: { broken: 'not configured' } });
  });

  it('answers 503 stopping as soon as the process stops, without running the checks', async () => {
    let stopping = false;
    const database = vi.fn(async () => undefined);
    const url = await serve(readyRoute(component, { database }, { stopping: () => stopping, logger: recordingLogger().logger }));
    expect((await get(url)).status).toBe(200);
    expect(database).toHaveBeenCalledTimes(1);
    stopping = true;
    const response = await get(url);
    expect(response.status).toBe(503);
    expect(response.body).toEqual({ status: 'stopping', service: 'story' });
    expect(database).toHaveBeenCalledTimes(1);
  });

  describe('deadline', () => {
    /** Enough of a response for sendJson; the deadline is tested on a faked clock. */
    function recordingResponse() {
      const answer: { status?: number; body?: unknown } = {};
      const res = {
        writeHead(status: number) {
          answer.status = status;
          return res;
        },
        end(body: string) {
          answer.body = JSON.parse(body);
        },
      };
      return { res: res as unknown as ServerResponse, answer };
    }

    it('answers 503 for a check that never resolves, once its 2 s deadline passes', async () => {
      vi.useFakeTimers();
      const { logger, warnings } = recordingLogger();
      const checks: Record<string, ReadinessCheck> = { nats: () => new Promise(() => {}), database: async () => undefined };
      const { res, answer } = recordingResponse();
      const handled = readyRoute(component, checks, { stopping: () => false, logger })({} as IncomingMessage, res);

      await vi.advanceTimersByTimeAsync(1_999);
      expect(answer.status).toBeUndefined();
      await vi.advanceTimersByTimeAsync(1);
      await handled;
      expect(answer).toEqual({
        status: 503,
        body: { status: 'unavailable', service: 'story', checks: { nats: 'no answer within 2000 ms', database: 'ok' } },
      });
      expect(warnings).toEqual([{ check: 'nats', message: 'no answer within 2000 ms' }]);
    });

    it('leaves no deadline timer behind once the checks have answered', async () => {
      vi.useFakeTimers();
      const { res, answer } = recordingResponse();
      const checks: Record<string, ReadinessCheck> = { database: async () => undefined, nats: async () => undefined };
      await readyRoute(component, checks, { stopping: () => false, logger: recordingLogger().logger })({} as IncomingMessage, res);
      expect(answer.status).toBe(200);
      expect(vi.getTimerCount()).toBe(0);
    });
  });
});
