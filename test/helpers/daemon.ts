/**
 * Spawns a Muster daemon (`muster agent`, `muster coordinator`) whose stdout is JSON log lines,
 * waits for the line that says it is ready, keeps every log line, and stops or kills it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** The bundled CLI (scripts/bundle-cli.js), as bin/muster runs it. */
export const cliPath = fileURLToPath(new URL('../../cli/muster.js', import.meta.url));

export interface Daemon {
  child: ChildProcess;
  /** The log line that said it was ready. */
  ready: Record<string, unknown>;
  /** Every JSON log line so far. */
  logs: Record<string, unknown>[];
  stderr(): string;
  /** SIGTERM, then SIGKILL after 10 s; resolves with the exit code. */
  stop(): Promise<number | null>;
  kill(): Promise<void>;
}

export async function spawnDaemon(
  args: string[],
  options: {
    env?: NodeJS.ProcessEnv;
    nodeArgs?: string[];
    /** Runs node through this command (e.g. `ip netns exec NAME`), which must exec it. */
    wrapper?: string[];
    /** The program to run instead of this Node with the bundled CLI (a release's bin/muster). */
    command?: string;
    isReady(entry: Record<string, unknown>): boolean;
    timeoutMs?: number;
  },
): Promise<Daemon> {
  const [program, ...programArgs] = [
    ...(options.wrapper ?? []),
    ...(options.command
      ? [options.command, ...args]
      : [process.execPath, ...(options.nodeArgs ?? []), cliPath, ...args]),
  ];
  const child = spawn(program!, programArgs, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...options.env },
  });
  const logs: Record<string, unknown>[] = [];
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = (): boolean => child.exitCode !== null || child.signalCode !== null;
  const ready = await new Promise<Record<string, unknown>>((resolve, reject) => {
    const timeoutMs = options.timeoutMs ?? 30_000;
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`muster ${args[0]} did not start in ${timeoutMs} ms: ${stderr}`));
    }, timeoutMs);
    let buffer = '';
    child.stdout.on('data', (d: Buffer) => {
      buffer += d.toString();
      const lines = buffer.split('\n');
      buffer = lines.pop() ?? '';
      for (const line of lines) {
        let entry: Record<string, unknown>;
        try {
          entry = JSON.parse(line) as Record<string, unknown>;
        } catch {
          continue;
        }
        logs.push(entry);
        if (options.isReady(entry)) {
          clearTimeout(timer);
          resolve(entry);
        }
      }
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(
        new Error(`muster ${args[0]} exited (${code ?? signal}) before it was ready: ${stderr}`),
      );
    });
  });
  return {
    child,
    ready,
    logs,
    stderr: () => stderr,
    stop: async () => {
      if (exited()) return child.exitCode;
      const done = new Promise<number | null>((resolve) =>
        child.once('exit', (code) => resolve(code)),
      );
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      const code = await done;
      clearTimeout(timer);
      return code;
    },
    kill: async () => {
      if (exited()) return;
      const done = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill('SIGKILL');
      await done;
    },
  };
}
