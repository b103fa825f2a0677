import { hkdfSync } from 'node:crypto';
import { join } from 'node:path';
import type { Config } from '../config.js';
import type { Handler } from '../http/server.js';
import type { Topology } from '../subgraph/module.js';
import { LocalDiskStorage, signedFileHandler } from './local.js';
import { S3Storage } from './s3.js';
import type { BlobStorage } from './storage.js';

/** Where clients reach a subgraph's media routes: through the gateway, which forwards `/media/<subgraph>/…`. */
export const mediaBaseUrl = (topology: Topology, subgraph: string) => () => `${topology.publicUrl()}/media/${subgraph}`;

/** A key of its own for media links, derived from the internal secret: no other secret to manage. */
export const mediaSecret = (config: Config) => Buffer.from(hkdfSync('sha256', config.INTERNAL_SECRET, 'storyloom', 'media-links', 32)).toString('base64url');

/** Where a subgraph's signed local files are served, under its HTTP server. */
export const FILES_PATH = '/media/files/';

/** The blob store a subgraph keeps its media in: local disk by default, S3 by the settings; each subgraph under its own prefix. */
export function storageFor(config: Config, topology: Topology, subgraph: string): BlobStorage {
  if (config.STORAGE_DRIVER === 's3') {
    return new S3Storage({
      bucket: config.S3_BUCKET!,
      region: config.S3_REGION,
      endpoint: config.S3_ENDPOINT,
      forcePathStyle: config.S3_FORCE_PATH_STYLE,
      accessKeyId: config.S3_ACCESS_KEY_ID,
      secretAccessKey: config.S3_SECRET_ACCESS_KEY,
      keyPrefix: `${subgraph}/`,
    });
  }
  const root = config.STORAGE_DIR ? join(config.STORAGE_DIR, subgraph) : join(config.DATA_DIR, 'blobs', subgraph);
  return new LocalDiskStorage({ root, publicBaseUrl: mediaBaseUrl(topology, subgraph), secret: mediaSecret(config) });
}

/** GET <downloadUrl> of a local store (S3 serves its own presigned URLs: null). */
export function filesRoute(storage: BlobStorage): Handler | null {
  if (!(storage instanceof LocalDiskStorage)) return null;
  const serve = signedFileHandler(storage);
  return (req, res) => serve(req, res, (req.url ?? '').split('?')[0]!.slice(FILES_PATH.length));
}
