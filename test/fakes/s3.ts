import { createHash, randomBytes } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { crc32 } from 'node:zlib';

/** An object as the fake holds it. */
export interface FakeS3Object {
  body: Buffer;
  contentType: string;
  /** Quoted, like S3's: the MD5 of the body for a single-part upload. */
  etag: string;
  /** The base64 CRC32 the client sent and the fake checked, if any. */
  checksumCrc32: string | undefined;
  lastModified: Date;
}

/** A request as the fake received it (before it was accepted or refused). */
export interface FakeS3Request {
  method: string;
  /** Path and query, as sent. */
  url: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

export interface FakeS3 {
  /** The endpoint, for `endpoint` with `forcePathStyle: true`. */
  url: string;
  bucket: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** Objects of `bucket` by key (the full key, any prefix included). */
  objects: Map<string, FakeS3Object>;
  requests: FakeS3Request[];
  /** Moves the fake's clock, which judges presigned URL expiry, forward. */
  advanceClock(seconds: number): void;
  close(): Promise<void>;
}

/**
 * A loopback S3 speaking the REST wire format for path-style object requests: PUT, GET, HEAD and
 * DELETE of `/<bucket>/<key>`, with S3's XML errors. Enough for S3Storage and the SDK presigner.
 *
 * What it checks: every request is signed, either with an `Authorization: AWS4-HMAC-SHA256
 * Credential=<accessKeyId>/<date>/<region>/s3/aws4_request, SignedHeaders=..., Signature=...`
 * header or, for presigned URLs, with the X-Amz-Algorithm/Credential/Date/Expires/Signature query
 * parameters, refused once X-Amz-Date + X-Amz-Expires is past by the fake's clock; a body's
 * `x-amz-content-sha256` (when it is a hash) and `x-amz-checksum-crc32` match the body.
 *
 * What it does not: verify the SigV4 signature itself (the SDK computes it; re-deriving it here
 * would test the SDK, not us), check the date of header-signed requests (so tests can move the
 * clock without the SDK's skew correction kicking in), or decode `aws-chunked` bodies: those are
 * refused with 501, because S3Storage sends a Buffer with a ContentLength precisely so that the
 * SDK sends a plain body.
 */
export async function startFakeS3(options: { bucket?: string } = {}): Promise<FakeS3> {
  const bucket = options.bucket ?? 'storyloom-test';
  const accessKeyId = `AKIA${randomBytes(8).toString('hex').toUpperCase()}`;
  const secretAccessKey = randomBytes(30).toString('base64');
  const objects = new Map<string, FakeS3Object>();
  const requests: FakeS3Request[] = [];
  let offsetMs = 0;
  const now = () => Date.now() + offsetMs;

  function sendError(res: ServerResponse, status: number, code: string, message: string, resource: string, head: boolean): void {
    const requestId = randomBytes(8).toString('hex').toUpperCase();
    const body = head
      ? ''
      : `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${xml(message)}</Message><Resource>${xml(resource)}</Resource><RequestId>${requestId}</RequestId></Error>`;
    res.writeHead(status, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(body), 'x-amz-request-id': requestId });
    res.end(body);
  }

  /** Why the request is not signed as S3 requires, or null when it is. */
  function refusal(headers: IncomingHttpHeaders, query: URLSearchParams): { status: number; code: string; message: string } | null {
    if (query.has('X-Amz-Algorithm') || query.has('X-Amz-Signature')) {
      if (query.get('X-Amz-Algorithm') !== 'AWS4-HMAC-SHA256') return denied('Unsupported X-Amz-Algorithm');
      const credential = query.get('X-Amz-Credential') ?? '';
      const signature = query.get('X-Amz-Signature') ?? '';
      const date = parseAmzDate(query.get('X-Amz-Date') ?? '');
      const expires = query.get('X-Amz-Expires') ?? '';
      if (!/^[0-9a-f]{64}$/.test(signature) || date === null || !/^\d+$/.test(expires) || Number(expires) < 1 || Number(expires) > 604_800) {
        return denied('Query-string authentication requires X-Amz-Signature, X-Amz-Date and X-Amz-Expires (1 to 604800)');
      }
      const id = credentialAccessKey(credential);
      if (id === null) return denied('Malformed X-Amz-Credential');
      if (id !== accessKeyId) return { status: 403, code: 'InvalidAccessKeyId', message: 'The AWS Access Key Id you provided does not exist in our records.' };
      if (now() > date + Number(expires) * 1000) return denied('Request has expired');
      return null;
    }
    const authorization = headers.authorization ?? '';
    const match = /^AWS4-HMAC-SHA256 Credential=(\S+), SignedHeaders=[a-z0-9;-]+, Signature=[0-9a-f]{64}$/.exec(authorization);
    if (!match) return denied(authorization ? 'Unsupported Authorization header' : 'Anonymous access is not allowed');
    const id = credentialAccessKey(match[1]!);
    if (id === null) return denied('Malformed Credential in the Authorization header');
    if (id !== accessKeyId) return { status: 403, code: 'InvalidAccessKeyId', message: 'The AWS Access Key Id you provided does not exist in our records.' };
    if (parseAmzDate(String(headers['x-amz-date'] ?? '')) === null) return denied('Missing or malformed x-amz-date');
    if (!headers['x-amz-content-sha256']) return { status: 400, code: 'InvalidRequest', message: 'Missing required header for this request: x-amz-content-sha256' };
    return null;
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      if (res.headersSent) return void res.destroy();
      sendError(res, 500, 'InternalError', `The fake failed: ${String(error)}`, req.url ?? '/', req.method === 'HEAD');
    });
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks);
    const method = req.method ?? 'GET';
    requests.push({ method, url: req.url ?? '/', headers: req.headers, body });
    const head = method === 'HEAD';

    const url = new URL(req.url ?? '/', 'http://fake-s3');
    const [, bucketName = '', ...rest] = url.pathname.split('/');
    const key = rest.map((segment) => decodeURIComponent(segment)).join('/');
    const resource = url.pathname;

    const refused = refusal(req.headers, url.searchParams);
    if (refused) return sendError(res, refused.status, refused.code, refused.message, resource, head);
    if (decodeURIComponent(bucketName) !== bucket) {
      return sendError(res, 404, 'NoSuchBucket', 'The specified bucket does not exist', resource, head);
    }
    if (!key) return sendError(res, 501, 'NotImplemented', 'The fake serves object requests only', resource, head);

    if (method === 'PUT') {
      const contentSha256 = String(req.headers['x-amz-content-sha256'] ?? '');
      if (contentSha256.startsWith('STREAMING-') || String(req.headers['content-encoding'] ?? '').includes('aws-chunked')) {
        return sendError(res, 501, 'NotImplemented', 'The fake does not decode aws-chunked bodies; send a plain body with a Content-Length', resource, false);
      }
      if (/^[0-9a-f]{64}$/.test(contentSha256) && createHash('sha256').update(body).digest('hex') !== contentSha256) {
        return sendError(res, 400, 'XAmzContentSHA256Mismatch', 'The provided x-amz-content-sha256 header does not match what was computed.', resource, false);
      }
      const checksum = req.headers['x-amz-checksum-crc32'] as string | undefined;
      if (checksum !== undefined && checksum !== crc32Base64(body)) {
        return sendError(res, 400, 'BadDigest', 'The CRC32 you specified did not match the calculated checksum.', resource, false);
      }
      const etag = `"${createHash('md5').update(body).digest('hex')}"`;
      objects.set(key, {
        body,
        contentType: String(req.headers['content-type'] ?? 'binary/octet-stream'),
        etag,
        checksumCrc32: checksum,
        lastModified: new Date(now()),
      });
      res.writeHead(200, { etag, 'content-length': 0, ...(checksum ? { 'x-amz-checksum-crc32': checksum } : {}) });
      res.end();
      return;
    }

    if (method === 'GET' || head) {
      const object = objects.get(key);
      if (!object) return sendError(res, 404, 'NoSuchKey', 'The specified key does not exist.', resource, head);
      const headers: Record<string, string | number> = {
        'content-type': object.contentType,
        'content-length': object.body.length,
        etag: object.etag,
        'last-modified': object.lastModified.toUTCString(),
        'accept-ranges': 'bytes',
      };
      const disposition = url.searchParams.get('response-content-disposition');
      if (disposition) headers['content-disposition'] = disposition;
      // As S3 does: the stored checksum comes back when asked for, and the SDK then verifies the body.
      const checksumMode = req.headers['x-amz-checksum-mode'] ?? url.searchParams.get('x-amz-checksum-mode');
      if (checksumMode === 'ENABLED' && object.checksumCrc32) {
        headers['x-amz-checksum-crc32'] = object.checksumCrc32;
        headers['x-amz-checksum-type'] = 'FULL_OBJECT';
      }
      res.writeHead(200, headers);
      res.end(head ? undefined : object.body);
      return;
    }

    if (method === 'DELETE') {
      objects.delete(key);
      res.writeHead(204);
      res.end();
      return;
    }

    return sendError(res, 405, 'MethodNotAllowed', `The specified method is not allowed against this resource: ${method}`, resource, head);
  }

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    bucket,
    accessKeyId,
    secretAccessKey,
    objects,
    requests,
    advanceClock(seconds: number) {
      offsetMs += seconds * 1000;
    },
    async close() {
      // The SDK keeps connections alive: close() alone would wait for their idle timeout.
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function denied(message: string) {
  return { status: 403, code: 'AccessDenied', message };
}

/** `<accessKeyId>/<yyyymmdd>/<region>/s3/aws4_request`: the access key id, or null if malformed. */
function credentialAccessKey(credential: string): string | null {
  const match = /^([^/]+)\/\d{8}\/[a-z0-9-]+\/s3\/aws4_request$/.exec(credential);
  return match ? match[1]! : null;
}

/** `20260102T030405Z` in milliseconds, or null. */
function parseAmzDate(text: string): number | null {
  const match = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(text);
  if (!match) return null;
  const [, year, month, day, hour, minute, second] = match.map(Number) as number[];
  return Date.UTC(year!, month! - 1, day!, hour!, minute!, second!);
}

function crc32Base64(body: Buffer): string {
  const checksum = Buffer.alloc(4);
  checksum.writeUInt32BE(crc32(body));
  return checksum.toString('base64');
}

function xml(text: string): string {
  return text.replace(/[<>&'"]/g, (c) => `&${{ '<': 'lt', '>': 'gt', '&': 'amp', "'": 'apos', '"': 'quot' }[c]};`);
}
