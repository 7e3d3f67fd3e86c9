/**
 * What the cache store checks before it writes a row (cache.ts). The routes check request bodies
 * with zod first; these keep the rows sound whoever calls: keys are sha256 hex, names and paths
 * bounded, sizes and modes sane, and every blob a row names is in the blob store with its size.
 */
import { MusterError } from '../../protocol/errors.js';
import { SHA256_PATTERN } from '../../protocol/manifest.js';
import { checkRelativePath } from '../../protocol/paths.js';
import type {
  BlobSizeOf,
  CacheBlob,
  NewCacheEntry,
  NewManifestLine,
  NewToolchain,
} from './types.js';

/** Caps, so that no client grows a row (or the coordinator's memory reading it) without bound. */
const LIMITS = {
  outputs: 10_000,
  includes: 20_000,
  path: 4096,
  stderrBytes: 1024 * 1024,
  toolchainFiles: 1000,
  infoBytes: 64 * 1024,
  createdBy: 256,
};

function invalid(message: string): MusterError {
  return new MusterError('VALIDATION_FAILED', message);
}

function checkSha(value: string, what: string): void {
  if (!SHA256_PATTERN.test(value)) throw invalid(`${what} is not a lowercase sha256 hex: ${value}`);
}

function checkSize(value: number, what: string): void {
  if (!Number.isSafeInteger(value) || value < 0)
    throw invalid(`${what} is not a size in bytes: ${value}`);
}

function checkPath(path: string, what: string): void {
  if (path.length === 0 || path.length > LIMITS.path || path.includes('\0'))
    throw invalid(`${what} is empty, longer than ${LIMITS.path} or holds a NUL`);
}

const STAMP = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

/** A row's stamp is an ISO-8601 UTC time as Date.toISOString() writes it (they sort as text). */
export function checkStamp(at: string): void {
  if (!STAMP.test(at) || Number.isNaN(Date.parse(at)))
    throw invalid(`the stamp ${at.slice(0, 64)} is not an ISO-8601 UTC time`);
}

function checkCreatedBy(createdBy: string): void {
  if (createdBy.length === 0 || createdBy.length > LIMITS.createdBy)
    throw invalid('createdBy is empty or too long');
}

export function checkEntry(entry: NewCacheEntry): void {
  checkSha(entry.key, 'the key');
  if (entry.kind !== 'compile' && entry.kind !== 'task')
    throw invalid(`kind ${String(entry.kind)}`);
  if (entry.source !== 'client' && entry.source !== 'agent')
    throw invalid(`source ${String(entry.source)}`);
  if (!Number.isInteger(entry.exitCode)) throw invalid(`exit code ${entry.exitCode}`);
  if (entry.toolchain !== null) checkSha(entry.toolchain, 'the toolchain');
  if (entry.buildUid !== null && (entry.buildUid.length === 0 || entry.buildUid.length > 64))
    throw invalid('the build uid is empty or too long');
  checkCreatedBy(entry.createdBy);
  if (entry.outputs.length > LIMITS.outputs) throw invalid(`more than ${LIMITS.outputs} outputs`);
  const names = new Set<string>();
  for (const output of entry.outputs) {
    checkPath(output.name, 'an output name');
    if (names.has(output.name)) throw invalid(`the output ${output.name} is listed twice`);
    names.add(output.name);
    checkSha(output.sha256, `output ${output.name}`);
    checkSize(output.size, `the size of ${output.name}`);
    if (!Number.isInteger(output.mode) || output.mode < 0 || output.mode > 0o7777)
      throw invalid(`the mode of ${output.name} is not a file mode: ${output.mode}`);
  }
  if (entry.stderr !== null) {
    checkSha(entry.stderr.sha256, 'stderr');
    checkSize(entry.stderr.size, 'the size of stderr');
    if (entry.stderr.size > LIMITS.stderrBytes)
      throw invalid(`stderr is larger than ${LIMITS.stderrBytes} bytes: not cached`);
  }
}

export function checkLine(line: NewManifestLine): void {
  checkSha(line.direct, 'the direct key');
  checkSha(line.entry, 'the entry');
  checkCreatedBy(line.createdBy);
  if (line.includes.length > LIMITS.includes)
    throw invalid(`more than ${LIMITS.includes} include files`);
  for (const include of line.includes) {
    const [path, sha256] = include;
    if (include.length !== 2) throw invalid('an include is not [path, sha256]');
    checkPath(path, 'an include path');
    checkSha(sha256, `include ${path}`);
  }
}

export function checkToolchain(toolchain: NewToolchain): void {
  checkSha(toolchain.id, 'the toolchain id');
  checkCreatedBy(toolchain.createdBy);
  if (toolchain.files.length === 0 || toolchain.files.length > LIMITS.toolchainFiles)
    throw invalid(`a toolchain has 1 to ${LIMITS.toolchainFiles} files`);
  const paths = new Set<string>();
  for (const file of toolchain.files) {
    // Agents lay these out under toolchains/<id>/.
    checkRelativePath(file.path, 'a toolchain path');
    if (paths.has(file.path)) throw invalid(`the toolchain lists ${file.path} twice`);
    paths.add(file.path);
    checkSha(file.sha256, file.path);
    checkSize(file.size, `the size of ${file.path}`);
    if (!Number.isInteger(file.mode) || file.mode < 0 || file.mode > 0o7777)
      throw invalid(`the mode of ${file.path} is not a file mode: ${file.mode}`);
  }
  if (JSON.stringify(toolchain.info).length > LIMITS.infoBytes)
    throw invalid(`the toolchain's description is longer than ${LIMITS.infoBytes} bytes`);
}

/** Every blob must be in the blob store with its declared size. */
export function checkBlobs(blobs: readonly CacheBlob[], blobSizeOf: BlobSizeOf): void {
  for (const { sha256, size } of blobs) {
    const actual = blobSizeOf(sha256);
    if (actual === undefined)
      throw new MusterError('BLOB_NOT_FOUND', `blob ${sha256} is not on the coordinator`, {
        sha256,
      });
    if (actual !== size)
      throw new MusterError(
        'BLOB_SIZE_MISMATCH',
        `blob ${sha256} has ${actual} bytes, not ${size}`,
        { sha256, size, actual },
      );
  }
}
