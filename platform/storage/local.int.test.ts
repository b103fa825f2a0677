import { createHmac, randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createServer, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { closeServer, listen } from '../http/server.js';
import { LocalDiskStorage, signedFileHandler } from './local.js';
import { bytesOf, storageContract, type StorageHarness } from './storage.contract.js';

const MOUNT = '/media/narration/files/';

interface LocalHarness extends StorageHarness {
  storage: LocalDiskStorage;
  /** Where `root` lives: a sibling of the objects that no URL may reach. */
  dir: string;
  root: string;
  secret: string;
  url: string;
}

/** A store with a frozen clock that only the test moves, served by a bare node:http server. */
async function startLocal(): Promise<LocalHarness> {
  const dir = await mkdtemp(join(tmpdir(), 'storyloom-storage-'));
  const root = join(dir, 'objects');
  const secret = randomBytes(32).toString('base64url');
  let now = Date.UTC(2026, 0, 1, 12);
  let serve: ReturnType<typeof signedFileHandler> | undefined;
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]!;
    if (!path.startsWith(MOUNT) || !serve) {
      res.writeHead(404).end();
      return;
    }
    serve(req, res, path.slice(MOUNT.length)).catch(() => {
      if (!res.headersSent) res.writeHead(500).end();
      else res.destroy();
    });
  });
  const url = await listen(server, 0, '127.0.0.1');
  const storage = new LocalDiskStorage({ root, publicBaseUrl: `${url}/media/narration/`, secret, clock: () => new Date(now) });
  serve = signedFileHandler(storage);
  return {
    storage,
    dir,
    root,
    secret,
    url,
    advanceClock: (seconds) => void (now += seconds * 1000),
    close: async () => {
      await closeServer(server);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** A GET with the path exactly as written: fetch would resolve '..' and '%2e%2e' before sending. */
function rawGet(base: string, path: string): Promise<{ status: number; body: string }> {
  const { hostname, port } = new URL(base);
  return new Promise((resolve, reject) => {
    const req = request({ host: hostname, port, path, method: 'GET' }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
    });
    req.on('error', reject);
    req.end();
  });
}

storageContract('local disk', startLocal);

describe('LocalDiskStorage', () => {
  let local: LocalHarness;
  const key = (name: string) => `l${randomBytes(5).toString('hex')}/${name}`;

  beforeAll(async () => {
    local = await startLocal();
  });
  afterAll(async () => {
    await local?.close();
  });

  it('refuses a secret shorter than 32 characters and a base URL with a query', () => {
    expect(() => new LocalDiskStorage({ root: local.root, publicBaseUrl: 'http://x/media', secret: 'short' })).toThrow(/32 characters/);
    expect(() => new LocalDiskStorage({ root: local.root, publicBaseUrl: 'http://x/media?a=1', secret: local.secret })).toThrow(/query/);
  });

  it('keeps each object as a plain file under root, with 0644 files and 0755 directories', async () => {
    const k = key('deep/chapter.mp3');
    const bytes = randomBytes(100);
    await local.storage.put(k, bytes, { contentType: 'audio/mpeg' });
    const file = join(local.root, ...k.split('/'));
    expect((await readFile(file)).equals(bytes)).toBe(true);
    // The process umask applies on top of the modes asked for, as it should.
    const umask = process.umask();
    expect((await stat(file)).mode & 0o777).toBe(0o644 & ~umask);
    expect((await stat(join(local.root, k.split('/')[0]!, 'deep'))).mode & 0o777).toBe(0o755 & ~umask);
  });

  it('leaves no temporary file behind when a body is too large', async () => {
    const k = key('big.mp3');
    await expect(local.storage.put(k, Buffer.alloc(10), { contentType: 'audio/mpeg', maxBytes: 9 })).rejects.toThrow('exceeds 9 bytes');
    const body = new PassThrough();
    const put = local.storage.put(k, body, { contentType: 'audio/mpeg', maxBytes: 9 });
    body.write(Buffer.alloc(5));
    body.write(Buffer.alloc(5));
    await expect(put).rejects.toThrow('exceeds 9 bytes');
    expect(await readdir(join(local.root, k.split('/')[0]!))).toEqual([]);
  });

  it('lets a reader see the old object whole while a replacement is being written', async () => {
    const k = key('atomic.mp3');
    const dir = join(local.root, k.split('/')[0]!);
    await local.storage.put(k, Buffer.from('old take'), { contentType: 'audio/mpeg' });
    const body = new PassThrough();
    const put = local.storage.put(k, body, { contentType: 'audio/ogg' });
    body.write('new ');
    // The replacement is under way once its temporary file holds the first chunk.
    await vi.waitFor(async () => {
      const temp = (await readdir(dir)).find((name) => name.endsWith('.tmp') && !name.endsWith('.meta.tmp'));
      expect(temp && (await stat(join(dir, temp))).size).toBe(4);
    });
    const during = await local.storage.read(k);
    expect(during?.contentType).toBe('audio/mpeg');
    expect((await bytesOf(during!.body)).toString()).toBe('old take');
    body.end('take, longer');
    await put;
    const after = await local.storage.read(k);
    expect(after?.contentType).toBe('audio/ogg');
    expect((await bytesOf(after!.body)).toString()).toBe('new take, longer');
  });

  it("never labels bytes with another put's content type: a sidecar that does not match is a crash between renames", async () => {
    const [k, other] = [key('torn.mp3'), key('other.ogg')];
    await local.storage.put(k, Buffer.from('mpeg bytes'), { contentType: 'audio/mpeg' });
    await local.storage.put(other, Buffer.from('ogg bytes'), { contentType: 'audio/ogg' });
    const sidecar = (name: string) => `${join(local.root, ...name.split('/'))}~meta.json`;
    await writeFile(sidecar(k), await readFile(sidecar(other)));
    const read = await local.storage.read(k);
    expect(read?.contentType).toBe('application/octet-stream');
    expect((await bytesOf(read!.body)).toString()).toBe('mpeg bytes');
  });

  it('treats a key that is a directory of other keys as absent', async () => {
    const k = key('folder/inner.mp3');
    await local.storage.put(k, Buffer.from('x'), { contentType: 'audio/mpeg' });
    await expect(local.storage.head(k.split('/').slice(0, 2).join('/'))).resolves.toBeNull();
    await expect(local.storage.read(k.split('/').slice(0, 2).join('/'))).resolves.toBeNull();
  });

  describe('signedFileHandler', () => {
    const bytes = randomBytes(1000);
    let k: string;
    let url: string;

    beforeAll(async () => {
      k = key('ranged.mp3');
      await local.storage.put(k, bytes, { contentType: 'audio/mpeg' });
      url = await local.storage.downloadUrl(k, { expiresInSeconds: 3600 });
    });

    async function expectRefusal(response: Response, status: number, code: string) {
      expect(response.status).toBe(status);
      expect(response.headers.get('content-type')).toContain('application/json');
      expect(await response.json()).toEqual({ error: { code, message: expect.any(String) } });
    }

    it('serves the whole file with the caching and range headers', async () => {
      const response = await fetch(url);
      expect(response.status).toBe(200);
      expect(Object.fromEntries(response.headers)).toMatchObject({
        'content-type': 'audio/mpeg',
        'content-length': '1000',
        'accept-ranges': 'bytes',
        'cache-control': 'private, max-age=3600',
        'x-content-type-options': 'nosniff',
      });
      expect(Buffer.from(await response.arrayBuffer()).equals(bytes)).toBe(true);
    });

    it('counts max-age down with the clock, and refuses once expired', async () => {
      const shortUrl = await local.storage.downloadUrl(k, { expiresInSeconds: 300 });
      local.advanceClock(100);
      const response = await fetch(shortUrl);
      expect(response.headers.get('cache-control')).toBe('private, max-age=200');
      await response.arrayBuffer();
      local.advanceClock(200);
      const last = await fetch(shortUrl);
      expect(last.headers.get('cache-control')).toBe('private, max-age=0');
      await last.arrayBuffer();
      local.advanceClock(1);
      const expired = await fetch(shortUrl);
      expect(expired.status).toBe(403);
      expect(await expired.json()).toEqual({ error: { code: 'FORBIDDEN', message: 'The link has expired' } });
    });

    it.each([
      ['bytes=0-9', 0, 9],
      ['bytes=990-', 990, 999],
      ['bytes=-5', 995, 999],
      ['bytes=995-5000', 995, 999],
      ['bytes=-5000', 0, 999],
      ['bytes=500-500', 500, 500],
    ])('answers Range %s with 206 and bytes %i-%i', async (range, start, end) => {
      const response = await fetch(url, { headers: { range } });
      expect(response.status).toBe(206);
      expect(response.headers.get('content-range')).toBe(`bytes ${start}-${end}/1000`);
      expect(response.headers.get('content-length')).toBe(String(end - start + 1));
      expect(Buffer.from(await response.arrayBuffer()).equals(bytes.subarray(start, end + 1))).toBe(true);
    });

    it.each(['bytes=1000-', 'bytes=5000-6000', 'bytes=-0'])('answers the unsatisfiable Range %s with 416', async (range) => {
      const response = await fetch(url, { headers: { range } });
      expect(response.headers.get('content-range')).toBe('bytes */1000');
      await expectRefusal(response, 416, 'RANGE_NOT_SATISFIABLE');
    });

    it.each([
      ['several ranges', { range: 'bytes=0-1,5-6' }],
      ['a reversed range', { range: 'bytes=9-0' }],
      ['another unit', { range: 'items=0-1' }],
      ['an If-Range it cannot evaluate', { range: 'bytes=0-9', 'if-range': '"some-etag"' }],
    ])('serves the whole file for %s', async (_, headers) => {
      const response = await fetch(url, { headers });
      expect(response.status).toBe(200);
      expect(Buffer.from(await response.arrayBuffer()).equals(bytes)).toBe(true);
    });

    it('answers HEAD with the headers and no body, ranges included', async () => {
      const whole = await fetch(url, { method: 'HEAD' });
      expect(whole.status).toBe(200);
      expect(whole.headers.get('content-length')).toBe('1000');
      expect(whole.headers.get('content-type')).toBe('audio/mpeg');
      expect((await whole.arrayBuffer()).byteLength).toBe(0);
      const part = await fetch(url, { method: 'HEAD', headers: { range: 'bytes=-10' } });
      expect(part.status).toBe(206);
      expect(part.headers.get('content-range')).toBe('bytes 990-999/1000');
    });

    it('refuses methods other than GET and HEAD with 405', async () => {
      const response = await fetch(url, { method: 'POST', body: 'x' });
      expect(response.headers.get('allow')).toBe('GET, HEAD');
      await expectRefusal(response, 405, 'METHOD_NOT_ALLOWED');
    });

    it('refuses a tampered or missing signature, expiry or filename with 403', async () => {
      const signed = new URL(url);
      const signature = signed.searchParams.get('signature')!;
      const tampered = (change: (query: URLSearchParams) => void) => {
        const copy = new URL(signed);
        change(copy.searchParams);
        return copy.toString();
      };
      const flipped = (signature[0] === 'A' ? 'B' : 'A') + signature.slice(1);
      for (const target of [
        tampered((q) => q.set('signature', flipped)),
        tampered((q) => q.set('signature', signature.slice(0, -1))),
        tampered((q) => q.set('expires', String(Number(q.get('expires')) + 1))),
        tampered((q) => q.set('filename', 'other.mp3')),
        tampered((q) => q.delete('signature')),
        tampered((q) => q.delete('expires')),
        `${local.url}${MOUNT}${k.replace('ranged', 'ranged2')}${signed.search}`,
      ]) {
        await expectRefusal(await fetch(target), 403, 'FORBIDDEN');
      }
    });

    it('answers 404 for a validly signed link to an absent object', async () => {
      const absent = key('never-stored.mp3');
      await expectRefusal(await fetch(await local.storage.downloadUrl(absent, { expiresInSeconds: 60 })), 404, 'NOT_FOUND');
    });

    it('refuses path traversal, plain or encoded, even when signed', async () => {
      await writeFile(join(local.dir, 'secret.txt'), 'top secret');
      const expires = Math.floor(Date.UTC(2027, 0, 1) / 1000);
      // Signed the way local.ts signs, to show the path check does not lean on the signature.
      const query = (path: string) => {
        const signature = createHmac('sha256', local.secret)
          .update(JSON.stringify(['storyloom.download.v1', decodeURIComponent(path), expires, null]))
          .digest('base64url');
        return `?expires=${expires}&signature=${signature}`;
      };
      for (const path of ['../secret.txt', '%2e%2e/secret.txt', '%2e%2e%2fsecret.txt', '..%2Fsecret.txt', 'a/%2E%2E/%2e%2e/secret.txt', '%252e%252e/secret.txt', '/secret.txt', '%2fsecret.txt']) {
        const response = await rawGet(local.url, `${MOUNT}${path}${query(path)}`);
        expect(response.status, path).toBe(404);
        expect(response.body, path).not.toContain('top secret');
      }
    });
  });
});
