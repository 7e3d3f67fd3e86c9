import { chmod, lstat, readdir, realpath, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { OperationContext } from '../../host/extensions.js';
import { coreError, inputObject, invalidInput } from './errors.js';
import { checkRelativePath, makeDirInside } from './paths.js';

interface PutFile {
  path: string;
  data: Buffer;
  mode: number;
}

/**
 * core/files.put: writes small files into the work dir.
 * Input `{ files: [{ path, content?: string (UTF-8) | base64?: string, mode?: number (0o644) }] }`,
 * exactly one of content and base64 per file. Paths are checked like inputs (INVALID_PATH); an
 * existing regular file is replaced, anything else in the way is an error. Returns
 * `{ written: [paths] }`.
 */
export async function put(input: unknown, ctx: OperationContext): Promise<{ written: string[] }> {
  const files = parsePut(input);
  const root = await realpath(ctx.workDir);
  for (const file of files) {
    ctx.signal.throwIfAborted();
    const slash = file.path.lastIndexOf('/');
    const dir = await makeDirInside(root, slash < 0 ? '' : file.path.slice(0, slash));
    const target = join(dir, file.path.slice(slash + 1));
    const existing = await lstat(target).catch(() => undefined);
    if (existing !== undefined) {
      if (!existing.isFile()) {
        throw coreError('INVALID_PATH', `"${file.path}" exists and is not a regular file`);
      }
      await unlink(target);
    }
    // 'wx' never writes through a symlink that appeared in the meantime.
    await writeFile(target, file.data, { flag: 'wx', mode: file.mode });
    await chmod(target, file.mode); // the umask may have narrowed it
  }
  return { written: files.map((f) => f.path) };
}

function parsePut(input: unknown): PutFile[] {
  const { files } = inputObject(input, 'core/files.put', ['files']);
  if (!Array.isArray(files)) throw invalidInput('core/files.put: "files" must be an array');
  return files.map((raw: unknown, i): PutFile => {
    const what = `core/files.put: files[${i}]`;
    const f = inputObject(raw, what, ['path', 'content', 'base64', 'mode']);
    const path = checkRelativePath(f.path, `${what}.path`);
    const { content, base64, mode = 0o644 } = f;
    if ((content === undefined) === (base64 === undefined)) {
      throw invalidInput(`${what}: give exactly one of "content" and "base64"`);
    }
    if (content !== undefined && typeof content !== 'string') {
      throw invalidInput(`${what}.content must be a string`);
    }
    if (
      base64 !== undefined &&
      (typeof base64 !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(base64))
    ) {
      throw invalidInput(`${what}.base64 must be base64 text`);
    }
    if (typeof mode !== 'number' || !Number.isInteger(mode) || mode < 0 || mode > 0o777) {
      throw invalidInput(`${what}.mode must be an integer from 0 to 0o777`);
    }
    const data =
      content !== undefined
        ? Buffer.from(content, 'utf8')
        : Buffer.from(base64 as string, 'base64');
    return { path, data, mode };
  });
}

/**
 * core/files.list: the work dir's files (anything but directories, symlinks included and not
 * followed) as sorted relative paths with "/". For debugging plans.
 */
export async function list(_input: unknown, ctx: OperationContext): Promise<string[]> {
  const out: string[] = [];
  const walk = async (dir: string, rel: string): Promise<void> => {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      const entryRel = rel === '' ? entry.name : `${rel}/${entry.name}`;
      if (entry.isDirectory()) await walk(join(dir, entry.name), entryRel);
      else out.push(entryRel);
    }
  };
  await walk(ctx.workDir, '');
  return out.sort();
}
