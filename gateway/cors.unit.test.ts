import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withCors } from './cors.js';

let open: Server;
let narrow: Server;
const urlOf = (server: Server) => `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;

const serve = (origins: string[]) =>
  new Promise<Server>((resolve) => {
    const server = createServer(withCors((_req, res) => void res.writeHead(200).end('ok'), origins));
    server.listen(0, '127.0.0.1', () => resolve(server));
  });

beforeAll(async () => {
  open = await serve(['*']);
  narrow = await serve(['https://app.storyloom.example']);
});
afterAll(() => {
  open.close();
  narrow.close();
});

const preflight = (server: Server, origin: string) =>
  fetch(urlOf(server), {
    method: 'OPTIONS',
    headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization, content-type' },
  });

describe('CORS', () => {
  it('answers any origin by default, without credentials', async () => {
    const res = await preflight(open, 'https://studio.example.org');
    expect(res.status).toBe(204);
    expect(res.headers.get('access-control-allow-origin')).toBe('*');
    expect(res.headers.get('access-control-allow-headers')).toContain('authorization');
    expect(res.headers.get('access-control-allow-credentials')).toBeNull();
    const post = await fetch(urlOf(open), { method: 'POST', headers: { origin: 'https://studio.example.org' } });
    expect([post.status, post.headers.get('access-control-allow-origin'), await post.text()]).toEqual([200, '*', 'ok']);
  });

  it('allows only the configured origins when CORS_ORIGINS is set', async () => {
    const ok = await preflight(narrow, 'https://app.storyloom.example');
    expect(ok.headers.get('access-control-allow-origin')).toBe('https://app.storyloom.example');
    expect(ok.headers.get('vary')).toBe('Origin');
    const other = await preflight(narrow, 'https://evil.example');
    expect(other.headers.get('access-control-allow-origin')).toBeNull();
    expect(other.headers.get('access-control-allow-methods')).toBeNull();
  });
});
