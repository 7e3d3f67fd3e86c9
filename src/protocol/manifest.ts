import { createHash } from 'node:crypto';
import { z } from 'zod';
import { MusterError } from './errors.js';
import { checkRelativePath } from './paths.js';

/** A SHA-256 as Muster writes it everywhere: 64 lower-case hex digits. */
export const SHA256_PATTERN = /^[0-9a-f]{64}$/;
export const sha256Hex = z.string().regex(SHA256_PATTERN, 'a lower-case hex SHA-256');

export const manifestFileSchema = z.strictObject({
  path: z.string().min(1).max(1024),
  sha256: sha256Hex,
  size: z
    .number()
    .int()
    .nonnegative()
    .max(2 ** 40),
  mode: z.number().int().min(0).max(0o777),
});
export type ManifestFile = z.infer<typeof manifestFileSchema>;

/**
 * What a coordinator offers an agent: its host runtime and extensions as a list of files.
 * `entry` is the host runtime's main module, one of the files.
 */
export const manifestSchema = z.strictObject({
  label: z.string().max(200).optional(),
  entry: z.string().min(1).max(1024),
  files: z.array(manifestFileSchema).min(1).max(100_000),
});
export type Manifest = z.infer<typeof manifestSchema>;

/**
 * Checks paths (safe, relative, unique, no file that is also a directory of another) and that
 * the entry is listed. Throws INVALID_PATH or INVALID_MANIFEST.
 */
export function checkManifest(manifest: Manifest): Manifest {
  const paths = new Set<string>();
  for (const file of manifest.files) {
    checkRelativePath(file.path, 'manifest path');
    if (paths.has(file.path)) {
      throw new MusterError('INVALID_MANIFEST', `manifest lists "${file.path}" twice`, {
        path: file.path,
      });
    }
    paths.add(file.path);
  }
  for (const path of paths) {
    const parts = path.split('/');
    for (let i = 1; i < parts.length; i++) {
      const dir = parts.slice(0, i).join('/');
      if (paths.has(dir)) {
        throw new MusterError(
          'INVALID_MANIFEST',
          `manifest lists "${dir}" as a file and as a directory`,
          { path: dir },
        );
      }
    }
  }
  checkRelativePath(manifest.entry, 'manifest entry');
  if (!paths.has(manifest.entry)) {
    throw new MusterError(
      'INVALID_MANIFEST',
      `manifest entry "${manifest.entry}" is not a listed file`,
    );
  }
  return manifest;
}

/** The content address of a version: the same files, sizes, modes and entry give the same id. */
export function versionIdOf(manifest: Manifest): string {
  const files = [...manifest.files]
    .sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))
    .map((f) => [f.path, f.sha256, f.size, f.mode]);
  return createHash('sha256')
    .update(JSON.stringify({ entry: manifest.entry, files }))
    .digest('hex');
}
