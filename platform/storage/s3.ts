import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  PutObjectCommand,
  S3Client,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { Readable } from 'node:stream';
import {
  assertValidContentType,
  assertValidDownloadOptions,
  assertValidKey,
  assertValidMaxBytes,
  contentDisposition,
  forEachChunk,
  isValidKey,
  type BlobStorage,
  type StoredObject,
} from './storage.js';

export interface S3StorageOptions {
  bucket: string;
  region: string;
  /** An S3-compatible endpoint (MinIO, R2, a test fake); AWS when absent. */
  endpoint?: string;
  /** `https://endpoint/bucket/key` instead of `https://bucket.endpoint/key`; most S3-compatible stores need it. */
  forcePathStyle?: boolean;
  /** Both or neither; with neither, the SDK's default chain (environment, profile, instance role). */
  accessKeyId?: string;
  secretAccessKey?: string;
  /** Prepended to every key, e.g. 'narration' stores 'a/b.mp3' as 'narration/a/b.mp3'. */
  keyPrefix?: string;
  /**
   * The most `put` holds in memory when the caller sets no `maxBytes` (default 64 MiB): a body
   * is buffered whole before it is sent (see `put`).
   */
  maxBufferBytes?: number;
  /**
   * The SDK's default, WHEN_SUPPORTED, sends a CRC32 of every upload in `x-amz-checksum-crc32`,
   * which S3 verifies. Some S3-compatible stores refuse those headers: WHEN_REQUIRED omits them.
   */
  requestChecksumCalculation?: 'WHEN_SUPPORTED' | 'WHEN_REQUIRED';
}

/**
 * A failed S3 call other than "not found", naming the operation, bucket and key. The SDK error
 * is deliberately not kept as `cause`: S3 error bodies (SignatureDoesNotMatch, say) carry the
 * access key id and the string to sign, and errors end up in logs.
 */
export class S3StorageError extends Error {
  constructor(
    readonly operation: string,
    readonly bucket: string,
    readonly key: string,
    readonly code: string,
    readonly status: number | undefined,
    detail: string,
  ) {
    super(`S3 ${operation} s3://${bucket}/${key} failed: ${code}${status ? ` (HTTP ${status})` : ''}: ${detail}`);
    this.name = 'S3StorageError';
  }
}

const DEFAULT_MAX_BUFFER_BYTES = 64 * 1024 * 1024;

interface SdkError {
  name?: string;
  message?: string;
  $metadata?: { httpStatusCode?: number };
}

const statusOf = (error: unknown) => (error as SdkError | undefined)?.$metadata?.httpStatusCode;
const nameOf = (error: unknown) => (error as SdkError | undefined)?.name ?? 'Error';

/**
 * Objects in an S3 bucket through the official SDK. Download links are SigV4 presigned GETs,
 * so the bucket itself stays private.
 */
export class S3Storage implements BlobStorage {
  readonly kind = 's3' as const;
  readonly bucket: string;
  private readonly client: S3Client;
  private readonly keyPrefix: string;
  private readonly maxBufferBytes: number;

  constructor(options: S3StorageOptions) {
    if (!options.bucket) throw new TypeError('S3Storage needs a bucket');
    if (!options.region) throw new TypeError('S3Storage needs a region');
    if (Boolean(options.accessKeyId) !== Boolean(options.secretAccessKey)) {
      throw new TypeError('S3Storage needs both accessKeyId and secretAccessKey, or neither');
    }
    const prefix = (options.keyPrefix ?? '').replace(/\/+$/, '');
    if (prefix && !isValidKey(prefix)) throw new TypeError(`Invalid S3 key prefix ${JSON.stringify(prefix)}`);
    this.keyPrefix = prefix ? `${prefix}/` : '';
    this.bucket = options.bucket;
    this.maxBufferBytes = options.maxBufferBytes ?? DEFAULT_MAX_BUFFER_BYTES;
    const config: S3ClientConfig = {
      region: options.region,
      forcePathStyle: options.forcePathStyle ?? false,
      ...(options.endpoint ? { endpoint: options.endpoint } : {}),
      ...(options.requestChecksumCalculation ? { requestChecksumCalculation: options.requestChecksumCalculation } : {}),
    };
    if (options.accessKeyId && options.secretAccessKey) {
      config.credentials = { accessKeyId: options.accessKeyId, secretAccessKey: options.secretAccessKey };
    }
    this.client = new S3Client(config);
  }

  /**
   * Buffers the body (at most `maxBytes`, or `maxBufferBytes`) and sends it in one PutObject with
   * its ContentLength. Audio samples and narrations are bounded, a few MB each, so memory is not
   * the constraint; in exchange the upload is one plain request: nothing reaches S3 when the body
   * is too large, no multipart upload is left to clean up, and the SDK never switches to
   * aws-chunked encoding, which it needs for a stream of unknown length and which many
   * S3-compatible stores do not speak. Video will want a multipart upload (lib-storage) instead.
   */
  async put(key: string, body: NodeJS.ReadableStream | Buffer, options: { contentType: string; maxBytes?: number }): Promise<StoredObject> {
    assertValidKey(key);
    assertValidContentType(options.contentType);
    assertValidMaxBytes(options.maxBytes);
    const limit = Math.min(options.maxBytes ?? Infinity, this.maxBufferBytes);
    const chunks: Buffer[] = [];
    const size = await forEachChunk(body, limit, (chunk) => void chunks.push(chunk));
    const bytes = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size);
    await this.call('PutObject', key, () =>
      this.client.send(
        new PutObjectCommand({ Bucket: this.bucket, Key: this.keyPrefix + key, Body: bytes, ContentType: options.contentType, ContentLength: size }),
      ),
    );
    return { key, size, contentType: options.contentType };
  }

  async read(key: string): Promise<{ body: NodeJS.ReadableStream; size: number; contentType: string } | null> {
    assertValidKey(key);
    const output = await this.call('GetObject', key, async () => {
      try {
        return await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.keyPrefix + key }));
      } catch (error) {
        // A 404 is NoSuchKey when S3 sends its XML body; some compatible stores send none. A
        // missing bucket is also a 404, and a configuration error rather than an absent object.
        if (nameOf(error) === 'NoSuchKey' || (statusOf(error) === 404 && nameOf(error) !== 'NoSuchBucket')) return null;
        throw error;
      }
    });
    if (!output) return null;
    if (!(output.Body instanceof Readable)) {
      throw new S3StorageError('GetObject', this.bucket, this.keyPrefix + key, 'UnexpectedBody', undefined, 'the SDK returned no Node.js stream');
    }
    return { body: output.Body, size: output.ContentLength ?? 0, contentType: output.ContentType ?? 'application/octet-stream' };
  }

  /**
   * HeadObject answers 404 without a body, so a missing bucket looks like a missing object here;
   * put and read tell them apart.
   */
  async head(key: string): Promise<StoredObject | null> {
    assertValidKey(key);
    const output = await this.call('HeadObject', key, async () => {
      try {
        return await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.keyPrefix + key }));
      } catch (error) {
        if (nameOf(error) === 'NotFound' || statusOf(error) === 404) return null;
        throw error;
      }
    });
    if (!output) return null;
    return { key, size: output.ContentLength ?? 0, contentType: output.ContentType ?? 'application/octet-stream' };
  }

  async delete(key: string): Promise<void> {
    assertValidKey(key);
    // S3 answers 204 whether or not the key existed.
    await this.call('DeleteObject', key, () => this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.keyPrefix + key })));
  }

  /** Signed locally with the client's credentials: no request is made, and the object may not exist yet. */
  async downloadUrl(key: string, options: { expiresInSeconds: number; filename?: string }): Promise<string> {
    assertValidKey(key);
    assertValidDownloadOptions(options);
    const command = new GetObjectCommand({
      Bucket: this.bucket,
      Key: this.keyPrefix + key,
      ...(options.filename !== undefined ? { ResponseContentDisposition: contentDisposition(options.filename) } : {}),
    });
    return this.call('PresignGetObject', key, () => getSignedUrl(this.client, command, { expiresIn: options.expiresInSeconds }));
  }

  /** Closes the SDK's pooled connections. */
  close(): void {
    this.client.destroy();
  }

  private async call<T>(operation: string, key: string, send: () => Promise<T>): Promise<T> {
    try {
      return await send();
    } catch (error) {
      throw new S3StorageError(operation, this.bucket, this.keyPrefix + key, nameOf(error), statusOf(error), (error as SdkError).message ?? String(error));
    }
  }
}
