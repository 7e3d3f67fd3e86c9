/**
 * Writing a compile's outputs as the compiler would have: a temp file in the same directory,
 * renamed over the target (make never sees half an object), mode `0666 & ~umask` of the shim.
 */
import { randomBytes } from 'node:crypto';
import { chmod, rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

export function outputMode(umask: number): number {
  return 0o666 & ~umask;
}

export async function writeOutput(path: string, data: Buffer, mode: number): Promise<void> {
  const temp = join(
    dirname(path),
    `.${basename(path)}.muster-${randomBytes(6).toString('hex')}.tmp`,
  );
  try {
    await writeFile(temp, data, { mode });
    // writeFile's mode passes through this process's umask; the shim's is what counts.
    await chmod(temp, mode);
    await rename(temp, path);
  } catch (err) {
    await rm(temp, { force: true });
    throw err;
  }
}
