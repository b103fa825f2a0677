import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeS3, type FakeS3 } from '../../test/fakes/s3.js';
import { S3Storage, S3StorageError, type S3StorageOptions } from './s3.js';
import { chunked, storageContract } from './storage.contract.js';
import { ObjectTooLarge } from './storage.js';

const optionsFor = (fake: FakeS3): S3StorageOptions => ({
  bucket: fake.bucket,
  region: 'us-east-1',
  endpoint: fake.url,
  forcePathStyle: true,
  accessKeyId: fake.accessKeyId,
  secretAccessKey: fake.secretAccessKey,
});

storageContract('S3', async () => {
  const fake = await startFakeS3();
  const storage = new S3Storage({ ...optionsFor(fake), keyPrefix: 'contract' });
  return {
    storage,
    advanceClock: (seconds) => fake.advanceClock(seconds),
    close: async () => {
      storage.close();
      await fake.close();
    },
  };
});

describe('S3Storage', () => {
  let fake: FakeS3;
  let storage: S3Storage;
  const key = (name: string) => `s${randomBytes(5).toString('hex')}/${name}`;
  const requestsFor = (fullKey: string) => fake.requests.filter((request) => request.url.split('?')[0] === `/${fake.bucket}/${fullKey}`);

  beforeAll(async () => {
    fake = await startFakeS3();
    storage = new S3Storage({ ...optionsFor(fake), keyPrefix: 'narration/' });
  });
  afterAll(async () => {
    storage?.close();
    await fake?.close();
  });

  it('puts one plain, signed body with its length, type and CRC32, under the key prefix', async () => {
    const k = key('take.mp3');
    const bytes = randomBytes(70_000);
    await storage.put(k, chunked(bytes), { contentType: 'audio/mpeg', maxBytes: 100_000 });
    expect(fake.objects.get(`narration/${k}`)?.body.equals(bytes)).toBe(true);
    const [put, ...others] = requestsFor(`narration/${k}`);
    expect(others).toEqual([]);
    expect(put?.method).toBe('PUT');
    expect(put?.headers).toMatchObject({
      'content-length': '70000',
      'content-type': 'audio/mpeg',
      'x-amz-checksum-crc32': expect.any(String),
      authorization: expect.stringMatching(new RegExp(`^AWS4-HMAC-SHA256 Credential=${fake.accessKeyId}/`)),
    });
    // A Buffer with a ContentLength keeps the SDK off aws-chunked encoding.
    expect(put?.headers['content-encoding']).toBeUndefined();
    expect(put?.headers['x-amz-content-sha256']).toMatch(/^[0-9a-f]{64}$/);
  });

  it('sends nothing at all when the body is too large', async () => {
    const k = key('huge.mp3');
    await expect(storage.put(k, chunked(randomBytes(2049), 512), { contentType: 'audio/mpeg', maxBytes: 2048 })).rejects.toBeInstanceOf(ObjectTooLarge);
    expect(requestsFor(`narration/${k}`)).toEqual([]);
  });

  it('caps a put without maxBytes at maxBufferBytes', async () => {
    const capped = new S3Storage({ ...optionsFor(fake), maxBufferBytes: 1024 });
    try {
      await expect(capped.put(key('uncapped.mp3'), chunked(randomBytes(1025), 100), { contentType: 'audio/mpeg' })).rejects.toMatchObject({ limit: 1024 });
    } finally {
      capped.close();
    }
  });

  it('presigns a GET that carries SigV4 query parameters and the Content-Disposition override', async () => {
    const k = key('chapter.mp3');
    await storage.put(k, Buffer.from('audio'), { contentType: 'audio/mpeg' });
    const url = new URL(await storage.downloadUrl(k, { expiresInSeconds: 900, filename: 'Chapter.mp3' }));
    expect(url.pathname).toBe(`/${fake.bucket}/narration/${k}`);
    expect(url.searchParams.get('X-Amz-Expires')).toBe('900');
    expect(url.searchParams.get('X-Amz-Credential')).toMatch(new RegExp(`^${fake.accessKeyId}/\\d{8}/us-east-1/s3/aws4_request$`));
    const response = await fetch(url);
    expect(response.headers.get('content-disposition')).toBe(`attachment; filename="Chapter.mp3"; filename*=UTF-8''Chapter.mp3`);
    expect(await response.text()).toBe('audio');
  });

  it('reports failures other than not-found with the bucket and key, and no credentials', async () => {
    const k = key('any.mp3');
    const wrongBucket = new S3Storage({ ...optionsFor(fake), bucket: 'no-such-bucket' });
    const wrongKey = new S3Storage({ ...optionsFor(fake), accessKeyId: 'AKIAUNKNOWN', secretAccessKey: 'not-the-secret-at-all' });
    try {
      const missingBucket = await wrongBucket.read(k).catch((e: unknown) => e);
      expect(missingBucket).toBeInstanceOf(S3StorageError);
      expect(missingBucket).toMatchObject({ operation: 'GetObject', bucket: 'no-such-bucket', key: k, code: 'NoSuchBucket', status: 404 });
      expect(String((missingBucket as Error).message)).toContain(`s3://no-such-bucket/${k}`);

      const refused = await wrongKey.put(k, Buffer.from('x'), { contentType: 'audio/mpeg' }).catch((e: unknown) => e);
      expect(refused).toMatchObject({ operation: 'PutObject', code: 'InvalidAccessKeyId', status: 403 });
      expect((refused as Error).message).toContain(`s3://${fake.bucket}/${k}`);
      expect((refused as Error).message).not.toContain('not-the-secret-at-all');
      expect((refused as Error).cause).toBeUndefined();
      await expect(wrongKey.delete(k)).rejects.toMatchObject({ code: 'InvalidAccessKeyId' });
      await expect(wrongKey.head(k)).rejects.toMatchObject({ operation: 'HeadObject', status: 403 });
    } finally {
      wrongBucket.close();
      wrongKey.close();
    }
  });

  it('refuses half-given credentials and an invalid key prefix', () => {
    expect(() => new S3Storage({ bucket: 'b', region: 'us-east-1', accessKeyId: 'AKIA' })).toThrow(/both/);
    expect(() => new S3Storage({ bucket: 'b', region: 'us-east-1', keyPrefix: '../up' })).toThrow(/prefix/);
  });

  describe('the fake', () => {
    it('refuses unsigned requests and expired presigned URLs with S3 XML errors', async () => {
      const k = key('guarded.mp3');
      await storage.put(k, Buffer.from('x'), { contentType: 'audio/mpeg' });
      const anonymous = await fetch(`${fake.url}/${fake.bucket}/narration/${k}`);
      expect(anonymous.status).toBe(403);
      expect(await anonymous.text()).toContain('<Code>AccessDenied</Code>');
      // X-Amz-Date is the signing second rounded down: a 1-second URL could already be stale
      // when fetched, so the margin is a minute and the clock is moved, not waited for.
      const url = await storage.downloadUrl(k, { expiresInSeconds: 60 });
      expect((await fetch(url)).status).toBe(200);
      fake.advanceClock(61);
      const expired = await fetch(url);
      expect(expired.status).toBe(403);
      expect(await expired.text()).toMatch(/<Code>AccessDenied<\/Code><Message>Request has expired<\/Message>/);
    });
  });
});
