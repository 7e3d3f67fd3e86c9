/**
 * The per-user compile service a test's `muster build` starts (it hosts the build, and lives on
 * after it as it does for a user): each test gives its builds an XDG_RUNTIME_DIR of its own, so
 * that the service is the test's, and ends it by its pid (from its log) when it is done.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { makeTempDir } from './temp-dirs.js';

const runtimes = new Set<string>();

/** A fresh XDG_RUNTIME_DIR whose compile services stopCompileServices() ends. */
export async function compileServiceRuntime(): Promise<string> {
  const dir = await makeTempDir('muster-cc-runtime-');
  runtimes.add(dir);
  return dir;
}

/** The pids of the services started in `runtime`, from their log next to the socket. */
export async function compileServicePids(runtime: string): Promise<number[]> {
  const text = await readFile(join(runtime, 'muster', 'cc-serve.log'), 'utf8').catch(() => '');
  const pids: number[] = [];
  for (const line of text.split('\n')) {
    if (!line.includes('compile service listening')) continue;
    const pid = (JSON.parse(line) as { pid?: unknown }).pid;
    if (typeof pid === 'number') pids.push(pid);
  }
  return pids;
}

/** Lines of the services' logs in `runtime` with this message. */
export async function compileServiceLog(runtime: string, msg: string): Promise<object[]> {
  const text = await readFile(join(runtime, 'muster', 'cc-serve.log'), 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter((line) => line.includes(msg))
    .map((line) => JSON.parse(line) as object);
}

/**
 * Whether pid is a compile service still running (not a process that reused its pid, nor one
 * that exited and waits to be reaped: its command line is empty).
 */
export async function isService(pid: number): Promise<boolean> {
  const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
  return cmdline.split('\0').includes('--serve');
}

/** Ends the services the tests' builds started: SIGTERM, then SIGKILL after 20 s. */
export async function stopCompileServices(): Promise<void> {
  const pids: number[] = [];
  for (const runtime of runtimes) pids.push(...(await compileServicePids(runtime)));
  runtimes.clear();
  const live = [];
  for (const pid of pids) if (await isService(pid)) live.push(pid);
  for (const pid of live) signal(pid, 'SIGTERM');
  const deadline = Date.now() + 20_000;
  for (const pid of live) {
    while ((await isService(pid)) && Date.now() < deadline) await sleep(50);
    if (await isService(pid)) signal(pid, 'SIGKILL');
  }
}

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch (err) {
    // Ended meanwhile.
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
  }
}
