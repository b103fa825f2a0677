import { randomBytes } from 'node:crypto';
import { PassThrough, Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ObjectTooLarge, readAll, type BlobStorage } from './storage.js';

/** A store under test, with the clock that judges its download URLs. */
export interface StorageHarness {
  storage: BlobStorage;
  /** Moves that clock forward: URL expiry is tested without sleeping. */
  advanceClock(seconds: number): void;
  close(): Promise<void>;
}

export const bytesOf = readAll;

/** `bytes` as a stream of `size`-byte chunks, so a body arrives in several pieces. */
export function chunked(bytes: Buffer, size = 16 * 1024): Readable {
  const pieces: Buffer[] = [];
  for (let offset = 0; offset < bytes.length; offset += size) pieces.push(bytes.subarray(offset, offset + size));
  return Readable.from(pieces, { objectMode: false });
}

const INVALID_KEYS = ['', '/a', 'a/', 'a//b', '../a', 'a/../b', 'a/./b', '.', 'a/..', 'a b', 'a\\b', 'a?b', 'a%2e', 'é.mp3', 'a.mp3~meta.json', 'x'.repeat(201), ['x', 'y', 'z'].map((c) => c.repeat(200)).join('/')];

/**
 * The behaviour every BlobStorage promises (see storage.ts). Each test works under its own key
 * prefix, so objects left by one never meet another.
 */
export function storageContract(name: string, make: () => Promise<StorageHarness>): void {
  describe(`${name} storage contract`, () => {
    let harness: StorageHarness;
    let storage: BlobStorage;

    beforeAll(async () => {
      harness = await make();
      storage = harness.storage;
    });
    afterAll(async () => {
      await harness?.close();
    });

    const prefix = () => `c${randomBytes(5).toString('hex')}`;

    it('stores a Buffer and reads it back with its size and content type', async () => {
      const key = `${prefix()}/narrations/chapter-1.mp3`;
      const bytes = randomBytes(1500);
      await expect(storage.put(key, bytes, { contentType: 'audio/mpeg' })).resolves.toEqual({ key, size: 1500, contentType: 'audio/mpeg' });
      await expect(storage.head(key)).resolves.toEqual({ key, size: 1500, contentType: 'audio/mpeg' });
      const read = await storage.read(key);
      expect(read).toMatchObject({ size: 1500, contentType: 'audio/mpeg' });
      expect((await bytesOf(read!.body)).equals(bytes)).toBe(true);
    });

    it('stores a stream that arrives in many chunks', async () => {
      const key = `${prefix()}/sample.wav`;
      const bytes = randomBytes(300 * 1024 + 7);
      await expect(storage.put(key, chunked(bytes), { contentType: 'audio/wav', maxBytes: 1024 * 1024 })).resolves.toEqual({
        key,
        size: bytes.length,
        contentType: 'audio/wav',
      });
      const read = await storage.read(key);
      expect(read?.size).toBe(bytes.length);
      expect((await bytesOf(read!.body)).equals(bytes)).toBe(true);
    });

    it('stores an empty object', async () => {
      const key = `${prefix()}/empty.bin`;
      await storage.put(key, Buffer.alloc(0), { contentType: 'application/octet-stream' });
      await expect(storage.head(key)).resolves.toEqual({ key, size: 0, contentType: 'application/octet-stream' });
      expect((await bytesOf((await storage.read(key))!.body)).length).toBe(0);
    });

    it('replaces the object when a key is put again', async () => {
      const key = `${prefix()}/voice.sample`;
      await storage.put(key, Buffer.from('first version, longer'), { contentType: 'audio/wav' });
      await storage.put(key, chunked(Buffer.from('second'), 2), { contentType: 'audio/ogg' });
      await expect(storage.head(key)).resolves.toEqual({ key, size: 6, contentType: 'audio/ogg' });
      const read = await storage.read(key);
      expect(read?.contentType).toBe('audio/ogg');
      expect((await bytesOf(read!.body)).toString()).toBe('second');
    });

    it('reports an absent key as null, and deletes idempotently', async () => {
      const key = `${prefix()}/gone.mp3`;
      await expect(storage.head(key)).resolves.toBeNull();
      await expect(storage.read(key)).resolves.toBeNull();
      await storage.put(key, Buffer.from('bytes'), { contentType: 'audio/mpeg' });
      await storage.delete(key);
      await expect(storage.head(key)).resolves.toBeNull();
      await expect(storage.read(key)).resolves.toBeNull();
      await expect(storage.delete(key)).resolves.toBeUndefined();
    });

    it('accepts a body of exactly maxBytes, as a stream or a Buffer', async () => {
      const key = `${prefix()}/exact`;
      const bytes = randomBytes(4096);
      await expect(storage.put(`${key}-stream.mp3`, chunked(bytes, 1000), { contentType: 'audio/mpeg', maxBytes: 4096 })).resolves.toMatchObject({ size: 4096 });
      await expect(storage.put(`${key}-buffer.mp3`, bytes, { contentType: 'audio/mpeg', maxBytes: 4096 })).resolves.toMatchObject({ size: 4096 });
      expect((await bytesOf((await storage.read(`${key}-stream.mp3`))!.body)).equals(bytes)).toBe(true);
    });

    it('refuses a stream one byte over maxBytes, stores nothing, and leaves the stream to its owner', async () => {
      const key = `${prefix()}/too-large.mp3`;
      const body = chunked(randomBytes(4097), 1000);
      const error = await storage.put(key, body, { contentType: 'audio/mpeg', maxBytes: 4096 }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ObjectTooLarge);
      expect((error as ObjectTooLarge).limit).toBe(4096);
      await expect(storage.head(key)).resolves.toBeNull();
      await expect(storage.read(key)).resolves.toBeNull();
      expect(body.destroyed).toBe(false);
    });

    it('stores nothing when the body stream fails part way', async () => {
      const key = `${prefix()}/aborted.mp3`;
      const body = new PassThrough();
      const put = storage.put(key, body, { contentType: 'audio/mpeg', maxBytes: 1024 });
      body.write(randomBytes(100));
      body.destroy(new Error('client went away'));
      await expect(put).rejects.toThrow('client went away');
      await expect(storage.head(key)).resolves.toBeNull();
    });

    it('refuses a Buffer over maxBytes', async () => {
      const key = `${prefix()}/too-large.bin`;
      await expect(storage.put(key, randomBytes(11), { contentType: 'audio/mpeg', maxBytes: 10 })).rejects.toBeInstanceOf(ObjectTooLarge);
      await expect(storage.head(key)).resolves.toBeNull();
    });

    it('keeps the previous object when a replacement is too large', async () => {
      const key = `${prefix()}/kept.mp3`;
      await storage.put(key, Buffer.from('the good take'), { contentType: 'audio/mpeg' });
      await expect(storage.put(key, chunked(randomBytes(200), 50), { contentType: 'audio/ogg', maxBytes: 100 })).rejects.toBeInstanceOf(ObjectTooLarge);
      await expect(storage.head(key)).resolves.toEqual({ key, size: 13, contentType: 'audio/mpeg' });
      expect((await bytesOf((await storage.read(key))!.body)).toString()).toBe('the good take');
    });

    it('throws on invalid keys in every operation', async () => {
      for (const key of INVALID_KEYS) {
        await expect(storage.put(key, Buffer.from('x'), { contentType: 'audio/mpeg' }), key).rejects.toThrow(TypeError);
        await expect(storage.read(key), key).rejects.toThrow(TypeError);
        await expect(storage.head(key), key).rejects.toThrow(TypeError);
        await expect(storage.delete(key), key).rejects.toThrow(TypeError);
        await expect(storage.downloadUrl(key, { expiresInSeconds: 60 }), key).rejects.toThrow(TypeError);
      }
      // The longest key, with the longest segments, is fine.
      const longest = `${prefix()}/${'k'.repeat(200)}/${'e'.repeat(200)}/${'y'.repeat(200)}`.slice(0, 512);
      await expect(storage.put(longest, Buffer.from('x'), { contentType: 'audio/mpeg' })).resolves.toMatchObject({ key: longest });
    });

    it('throws on a content type that could not be a header, and on a bad expiry', async () => {
      const key = `${prefix()}/typed.mp3`;
      for (const contentType of ['', 'audio', 'audio/mpeg\r\nx-injected: 1', 'audio mpeg']) {
        await expect(storage.put(key, Buffer.from('x'), { contentType }), contentType).rejects.toThrow(TypeError);
      }
      await expect(storage.head(key)).resolves.toBeNull();
      for (const expiresInSeconds of [0, -1, 1.5, 604_801]) {
        await expect(storage.downloadUrl(key, { expiresInSeconds }), String(expiresInSeconds)).rejects.toThrow(TypeError);
      }
    });

    it('serves a download URL with the bytes and the content type, and the filename when given', async () => {
      const key = `${prefix()}/narration.mp3`;
      const bytes = randomBytes(2048);
      await storage.put(key, bytes, { contentType: 'audio/mpeg' });
      const response = await fetch(await storage.downloadUrl(key, { expiresInSeconds: 300 }));
      expect(response.status).toBe(200);
      expect(response.headers.get('content-type')).toBe('audio/mpeg');
      expect(Buffer.from(await response.arrayBuffer()).equals(bytes)).toBe(true);

      const named = await fetch(await storage.downloadUrl(key, { expiresInSeconds: 300, filename: 'Chapter 1 – "Dawn".mp3' }));
      expect(named.status).toBe(200);
      expect(named.headers.get('content-disposition')).toBe(
        `attachment; filename="Chapter 1 _ _Dawn_.mp3"; filename*=UTF-8''Chapter%201%20%E2%80%93%20%22Dawn%22.mp3`,
      );
      await named.arrayBuffer();
    });

    it('refuses a download URL once it has expired', async () => {
      const key = `${prefix()}/short-lived.mp3`;
      await storage.put(key, Buffer.from('brief'), { contentType: 'audio/mpeg' });
      const url = await storage.downloadUrl(key, { expiresInSeconds: 60 });
      const fresh = await fetch(url);
      expect(fresh.status).toBe(200);
      await fresh.arrayBuffer();
      harness.advanceClock(61);
      const stale = await fetch(url);
      expect(stale.status).toBe(403);
      expect(await stale.text()).not.toContain('brief');
    });
  });
}
