import { randomBytes } from 'node:crypto';
import { rename, writeFile } from 'node:fs/promises';

/** Writes a file atomically (temp file, then rename) with the given mode. */
export async function writeAtomic(file: string, content: string, mode = 0o644): Promise<void> {
  const temp = `${file}.${randomBytes(6).toString('hex')}.tmp`;
  await writeFile(temp, content, { mode });
  await rename(temp, file);
}
