/**
 * The processes a benchmark starts (`muster agent`, `muster coordinator`): spawned with their own
 * data dir, stopped with SIGTERM (SIGKILL after 10 s) and their data dir removed — and, should a
 * benchmark throw or the run be interrupted, killed and cleaned by the exit hooks below.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The bundled CLI (scripts/bundle-cli.js), as bin/muster runs it. */
export const cliPath = fileURLToPath(new URL('../cli/muster.js', import.meta.url));

export interface BenchProcess {
  child: ChildProcess;
  dataDir: string;
  /** Idempotent. */
  stop: () => Promise<void>;
  /** SIGKILL; keeps the data dir (a restart reuses it). */
  kill: () => Promise<void>;
}

const live = new Set<{ child: ChildProcess; dataDir: string }>();

function killAllNow(): void {
  for (const entry of live) {
    try {
      entry.child.kill('SIGKILL');
    } catch {
      // already gone
    }
    removeDir(entry.dataDir);
  }
  live.clear();
}

process.once('exit', killAllNow);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    killAllNow();
    process.exit(130);
  });
}

/** Node flags from an environment variable, e.g. BENCH_AGENT_NODE_ARGS="--cpu-prof". */
export function nodeArgsFrom(variable: string): string[] {
  const raw = process.env[variable];
  return raw === undefined || raw.trim() === '' ? [] : raw.trim().split(/\s+/);
}

/** Starts `node [nodeArgs] muster ARGS` with stdout and stderr piped. */
export function spawnMuster(
  args: string[],
  options: { dataDir: string; nodeArgs?: string[]; env?: NodeJS.ProcessEnv },
): BenchProcess {
  const child = spawn(process.execPath, [...(options.nodeArgs ?? []), cliPath, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...options.env },
  });
  const entry = { child, dataDir: options.dataDir };
  live.add(entry);
  let stopped: Promise<void> | undefined;
  return {
    child,
    dataDir: options.dataDir,
    stop: () => {
      stopped ??= (async () => {
        if (child.exitCode === null && child.signalCode === null) {
          const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
          child.kill('SIGTERM');
          const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
          await exited;
          clearTimeout(timer);
        }
        live.delete(entry);
        removeDir(options.dataDir);
      })();
      return stopped;
    },
    kill: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
        child.kill('SIGKILL');
        await exited;
      }
      live.delete(entry);
    },
  };
}

/**
 * Removes a data dir. The agent makes version directories read-only (0555), which only root may
 * delete from, so on failure the tree is made writable first.
 */
export function removeDir(dir: string): void {
  try {
    rmSync(dir, { recursive: true, force: true });
    return;
  } catch {
    // fall through
  }
  const makeWritable = (path: string): void => {
    try {
      chmodSync(path, 0o755);
      for (const e of readdirSync(path, { withFileTypes: true })) {
        if (e.isDirectory()) makeWritable(join(path, e.name));
      }
    } catch {
      // best effort
    }
  };
  makeWritable(dir);
  rmSync(dir, { recursive: true, force: true });
}
