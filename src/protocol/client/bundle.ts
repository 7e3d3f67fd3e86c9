/**
 * A bundle is what a coordinator pushes to agents: its host runtime and extensions as one
 * manifest (path -> sha256, size, mode) plus where each file's bytes come from. Layout on the
 * agent: package.json, host/**, extensions/<name>/**, and with registered compiler toolchains
 * (added by the coordinator's BundleManager) toolchains/<id>/** and toolchains/<id>.json.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import { MusterError } from '../errors.js';
import { checkManifest, versionIdOf, type Manifest } from '../manifest.js';
import { packagePath } from './package-root.js';

export type BlobSource = { file: string } | { data: Buffer };

export interface BundleBlob {
  sha256: string;
  size: number;
  source: BlobSource;
}

export interface Bundle {
  manifest: Manifest;
  versionId: string;
  blobs: Map<string, BundleBlob>;
}

export interface BundleOptions {
  /** The host runtime: a folder whose main.js is the entry (default: this package's host). */
  hostDir?: string;
  /** Extension folders, each with a muster-extension.json (default: the built-in core and cc). */
  extensionDirs?: string[];
  label?: string;
}

/** dist/src/host and dist/src/extensions/{core,cc} of this package. */
export const defaultHostDir = packagePath('dist', 'src', 'host/');
export const coreExtensionDir = packagePath('dist', 'src', 'extensions', 'core/');
/** Remote compiles (issue 13): runs the toolchains a bundle carries under toolchains/. */
export const ccExtensionDir = packagePath('dist', 'src', 'extensions', 'cc/');

/** The extensions every bundle of this package ships; users cannot add or replace these names. */
export const BUILT_IN_EXTENSIONS: readonly string[] = ['cc', 'core'];

export async function createBundle(options: BundleOptions = {}): Promise<Bundle> {
  const hostDir = options.hostDir ?? defaultHostDir;
  const extensionDirs = options.extensionDirs ?? [coreExtensionDir, ccExtensionDir];
  const files: Manifest['files'] = [];
  const blobs = new Map<string, BundleBlob>();
  const add = (
    path: string,
    sha256: string,
    size: number,
    mode: number,
    source: BlobSource,
  ): void => {
    files.push({ path, sha256, size, mode });
    if (!blobs.has(sha256)) blobs.set(sha256, { sha256, size, source });
  };
  const pkg = Buffer.from('{ "type": "module" }\n');
  add('package.json', sha256Of(pkg), pkg.length, 0o644, { data: pkg });
  for (const file of await walk(hostDir)) {
    add(`host/${file.rel}`, await hashFile(file.abs), file.size, file.mode, { file: file.abs });
  }
  const names = new Set<string>();
  for (const dir of extensionDirs) {
    const name = await extensionName(dir);
    if (names.has(name))
      throw new MusterError('INVALID_MANIFEST', `two extensions are named "${name}"`);
    names.add(name);
    for (const file of await walk(dir)) {
      add(`extensions/${name}/${file.rel}`, await hashFile(file.abs), file.size, file.mode, {
        file: file.abs,
      });
    }
  }
  const manifest: Manifest = {
    ...(options.label === undefined ? {} : { label: options.label }),
    entry: 'host/main.js',
    files,
  };
  checkManifest(manifest);
  return { manifest, versionId: versionIdOf(manifest), blobs };
}

export async function extensionName(dir: string): Promise<string> {
  const file = join(dir, 'muster-extension.json');
  let parsed: { name?: unknown };
  try {
    parsed = JSON.parse(await readFile(file, 'utf8')) as { name?: unknown };
  } catch (err) {
    throw new MusterError('INVALID_MANIFEST', `${file}: ${(err as Error).message}`, undefined, {
      cause: err,
    });
  }
  if (typeof parsed.name !== 'string' || !/^[a-z0-9][a-z0-9._-]{0,63}$/.test(parsed.name)) {
    throw new MusterError('INVALID_MANIFEST', `${file}: "name" must be a lower-case name`);
  }
  return parsed.name;
}

export function sha256Of(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

export async function hashFile(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 1024 * 1024 }))
    hash.update(chunk as Buffer);
  return hash.digest('hex');
}

interface WalkedFile {
  rel: string;
  abs: string;
  size: number;
  mode: number;
}

/** Regular files under dir (symlinks followed), sorted, with '/'-separated relative paths. */
async function walk(dir: string): Promise<WalkedFile[]> {
  const out: WalkedFile[] = [];
  const visit = async (current: string): Promise<void> => {
    for (const name of (await readdir(current)).sort()) {
      const abs = join(current, name);
      const info = await stat(abs);
      if (info.isDirectory()) await visit(abs);
      else if (info.isFile()) {
        out.push({
          rel: relative(dir, abs).split(sep).join('/'),
          abs,
          size: info.size,
          mode: info.mode & 0o777,
        });
      }
    }
  };
  await visit(dir);
  return out;
}
