/**
 * Local files and the coordinator's blob store: walk a folder, hash files, upload only the blobs
 * the coordinator lacks, and write downloaded outputs atomically under a directory (confined to
 * it: confined.ts).
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile, readdir, realpath, stat } from 'node:fs/promises';
import { join, relative, resolve } from 'node:path';
import { MusterError } from '../protocol/errors.js';
import { checkRelativePath } from '../protocol/paths.js';
import type { ApiClient } from './api-client.js';
import { openInside, writeInside } from './confined.js';

export interface LocalFile {
  /** Relative to the root it was found under, with "/" separators. */
  path: string;
  absolute: string;
  sha256: string;
  size: number;
  mode: number;
}

export interface RemoteFile {
  path: string;
  sha256: string;
  size: number;
  mode: number;
}

const CONCURRENCY = 8;
const MISSING_BATCH = 10_000;

/** Runs fn over items, at most `limit` at once, keeping the order of results. */
export async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<R>,
): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const index = next++;
      results[index] = await fn(items[index] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

/**
 * Regular files under root/base (relative to root, "/" separators, sorted). Directories named in
 * `skip` are not entered; symlinks to directories are not followed (no loops). Symlinks to files
 * count as files, unless `links` is given: then every symlink met is pushed there instead, for
 * the caller to judge.
 */
export async function walkFiles(
  root: string,
  options: { base?: string; skip?: ReadonlySet<string>; links?: string[] } = {},
): Promise<string[]> {
  const out: string[] = [];
  const skip = options.skip ?? new Set<string>();
  const links = options.links;
  const visit = async (relDir: string): Promise<void> => {
    let entries;
    try {
      entries = await readdir(join(root, relDir), { withFileTypes: true });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return;
      throw new MusterError(
        'INVALID_CONFIG',
        `cannot read ${join(root, relDir)}: ${(err as Error).message}`,
        undefined,
        { cause: err },
      );
    }
    for (const entry of entries) {
      const rel = relDir === '' ? entry.name : `${relDir}/${entry.name}`;
      if (entry.isDirectory()) {
        if (!skip.has(entry.name)) await visit(rel);
      } else if (entry.isFile()) {
        out.push(rel);
      } else if (entry.isSymbolicLink() && links) {
        links.push(rel);
      } else if (entry.isSymbolicLink()) {
        const target = await stat(join(root, rel)).catch(() => undefined);
        if (target?.isFile()) out.push(rel);
      }
    }
  };
  await visit(options.base ?? '');
  return out.sort();
}

/** SHA-256 (hex) and size of a file, streamed. */
export async function hashFile(path: string): Promise<{ sha256: string; size: number }> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of createReadStream(path)) {
    hash.update(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  return { sha256: hash.digest('hex'), size };
}

/**
 * Hashes the files (relative to root) for upload. With `confine`, each file is read only when its
 * real path is inside root (INPUT_ESCAPES otherwise), from a descriptor checked after opening
 * (confined.ts); `absolute` is then that real path, and uploadMissing re-checks the hash of what
 * it sends, so what is uploaded is always what was checked.
 */
export async function describeFiles(
  root: string,
  paths: readonly string[],
  options: { confine?: boolean } = {},
): Promise<LocalFile[]> {
  const realRoot = options.confine ? await realpath(root) : undefined;
  return mapLimit(paths, CONCURRENCY, async (path) => {
    const absolute = join(root, ...path.split('/'));
    if (realRoot !== undefined) return describeInside(root, realRoot, path);
    try {
      const info = await stat(absolute);
      const { sha256, size } = await hashFile(absolute);
      return { path, absolute, sha256, size, mode: info.mode & 0o777 };
    } catch (err) {
      throw new MusterError(
        'INVALID_CONFIG',
        `cannot read ${absolute}: ${(err as Error).message}`,
        undefined,
        { cause: err },
      );
    }
  });
}

async function describeInside(root: string, realRoot: string, path: string): Promise<LocalFile> {
  const { handle, real } = await openInside(root, realRoot, path);
  try {
    const info = await handle.stat();
    if (!info.isFile()) {
      throw new MusterError('INVALID_CONFIG', `input "${path}" is not a regular file`, { path });
    }
    const hash = createHash('sha256');
    let size = 0;
    for await (const chunk of handle.createReadStream({ autoClose: false })) {
      hash.update(chunk as Buffer);
      size += (chunk as Buffer).length;
    }
    return { path, absolute: real, sha256: hash.digest('hex'), size, mode: info.mode & 0o777 };
  } finally {
    await handle.close();
  }
}

/** Uploads the blobs the coordinator does not have yet; returns how many and how many bytes. */
export async function uploadMissing(
  client: ApiClient,
  files: readonly LocalFile[],
): Promise<{ blobs: number; bytes: number }> {
  const byHash = new Map<string, LocalFile>();
  for (const file of files) byHash.set(file.sha256, file);
  const hashes = [...byHash.keys()];
  const missing: string[] = [];
  for (let i = 0; i < hashes.length; i += MISSING_BATCH) {
    missing.push(...(await client.missingBlobs(hashes.slice(i, i + MISSING_BATCH))));
  }
  let bytes = 0;
  await mapLimit(missing, 4, async (sha256) => {
    const file = byHash.get(sha256);
    if (!file) return; // the server asked for a hash we never offered: nothing to send
    const data = await readFile(file.absolute);
    if (createHash('sha256').update(data).digest('hex') !== sha256) {
      throw new MusterError(
        'BLOB_HASH_MISMATCH',
        `${file.absolute} changed while it was being uploaded: run again`,
        { path: file.path },
      );
    }
    await client.putBlob(sha256, data);
    bytes += data.length;
  });
  return { blobs: missing.length, bytes };
}

/**
 * Downloads files into dir: each path must be safe and relative (INVALID_PATH otherwise, checked
 * for all before anything is written); a later entry for the same path wins. Files are written
 * by writeInside (confined.ts): never through a symlink already in the directory, each to a
 * temporary name beside it, given its mode, then renamed, so a reader never sees half a file.
 * Which paths a build may write at all is decided before this (outputs.ts).
 */
export async function downloadFiles(
  client: Pick<ApiClient, 'getBlob'>,
  dir: string,
  files: readonly RemoteFile[],
): Promise<{ files: number; bytes: number }> {
  const root = resolve(dir);
  const byPath = new Map<string, RemoteFile>();
  for (const file of files) {
    checkRelativePath(file.path, 'output path');
    byPath.delete(file.path);
    byPath.set(file.path, file);
  }
  const realRoot = await realpath(root).catch((err: unknown) => {
    throw new MusterError(
      'STORAGE_ERROR',
      `cannot write to ${root}: ${(err as Error).message}`,
      { path: root },
      { cause: err },
    );
  });
  let bytes = 0;
  const blobs = new Map<string, Promise<Buffer>>();
  const fetchBlob = (file: RemoteFile): Promise<Buffer> => {
    let blob = blobs.get(file.sha256);
    if (!blob) {
      blob = client.getBlob(file.sha256, file.size).then((data) => {
        if (createHash('sha256').update(data).digest('hex') !== file.sha256) {
          throw new MusterError(
            'BLOB_HASH_MISMATCH',
            `the coordinator sent content for ${file.path} that does not match its SHA-256`,
            { path: file.path, sha256: file.sha256 },
          );
        }
        return data;
      });
      blobs.set(file.sha256, blob);
    }
    return blob;
  };
  await mapLimit([...byPath.values()], 4, async (file) => {
    const data = await fetchBlob(file);
    await writeInside(realRoot, file.path, data, file.mode);
    bytes += data.length;
  });
  return { files: byPath.size, bytes };
}

/** The path relative to the working directory, for messages. */
export function displayPath(path: string): string {
  const rel = relative(process.cwd(), path);
  return rel === '' ? '.' : rel.startsWith('..') ? path : rel;
}
