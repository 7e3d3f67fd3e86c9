/**
 * Which machine (which running kernel) a process is on, without saying anything else about it:
 * sha256 of "muster-boot:" + the kernel's boot id. Agents send it in `ready.capacity.bootId` and
 * the compile service with its session, so the coordinator can tell an agent that shares the
 * client's cores (same kernel: the same machine, or a container on it) from one that adds
 * cores. The raw boot id never leaves the machine.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';

/** Linux: a random UUID the kernel makes at each boot. */
export const BOOT_ID_FILE = '/proc/sys/kernel/random/boot_id';

/** The hashed id for a boot id file's text; undefined when it holds nothing. */
export function bootIdOf(text: string): string | undefined {
  const raw = text.trim();
  if (raw === '') return undefined;
  return createHash('sha256').update(`muster-boot:${raw}`).digest('hex');
}

/** This machine's hashed boot id; undefined when the kernel has none to read (not Linux). */
export async function readBootId(file: string = BOOT_ID_FILE): Promise<string | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    return undefined;
  }
  return bootIdOf(text);
}
