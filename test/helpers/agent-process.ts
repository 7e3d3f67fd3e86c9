/**
 * Starts real `muster agent` processes for end-to-end tests: port 0 on loopback, a temp data
 * dir, the listening line parsed from the JSON log, and a kill that always cleans up.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AgentClient, type AgentClientOptions } from '../../src/protocol/client/agent-client.js';

export const cliPath = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

export interface StartedAgent {
  process: ChildProcess;
  host: string;
  port: number;
  fingerprint: string | undefined;
  accessKey: string;
  dataDir: string;
  /** Every JSON log line so far. */
  logs: Record<string, unknown>[];
  stderr: () => string;
  connect(options?: Partial<AgentClientOptions>): Promise<AgentClient>;
  /** SIGTERM, then SIGKILL after 10 s; resolves with the exit code. */
  stop(): Promise<number | null>;
  kill(): Promise<void>;
}

const started = new Set<StartedAgent>();

export async function makeTempDir(prefix = 'muster-test-'): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

export async function startAgent(
  options: { dataDir?: string; args?: string[]; env?: NodeJS.ProcessEnv; listen?: string } = {},
): Promise<StartedAgent> {
  const dataDir = options.dataDir ?? (await makeTempDir());
  const child = spawn(
    process.execPath,
    [
      cliPath,
      'agent',
      '--listen',
      options.listen ?? '127.0.0.1:0',
      '--data',
      dataDir,
      ...(options.args ?? []),
    ],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...options.env } },
  );
  const logs: Record<string, unknown>[] = [];
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const listening = await new Promise<Record<string, unknown>>((resolve, reject) => {
    let buffer = '';
    const timer = setTimeout(
      () => reject(new Error(`agent did not start in 20 s: ${stderr}`)),
      20_000,
    );
    child.stdout.on('data', (d: Buffer) => {
      buffer += d.toString();
      const lines = buffer.split('\n');
      buffer = lines.pop() ?? '';
      for (const line of lines) {
        try {
          const entry = JSON.parse(line) as Record<string, unknown>;
          logs.push(entry);
          if (entry.msg === 'listening') {
            clearTimeout(timer);
            resolve(entry);
          }
        } catch {
          // not a log line
        }
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`agent exited with ${code} before listening: ${stderr}`));
    });
  });
  const accessKeyArg = options.args?.indexOf('--access-key') ?? -1;
  const accessKey =
    accessKeyArg >= 0
      ? options.args![accessKeyArg + 1]!
      : (await readFile(join(dataDir, 'access-key'), 'utf8')).trim();
  const agent: StartedAgent = {
    process: child,
    host: listening.host as string,
    port: listening.port as number,
    fingerprint: listening.fingerprint as string | undefined,
    accessKey,
    dataDir,
    logs,
    stderr: () => stderr,
    connect: (overrides = {}) =>
      AgentClient.connect({
        host: '127.0.0.1',
        port: agent.port,
        accessKey: agent.accessKey,
        tls: agent.fingerprint === undefined ? false : { fingerprint: agent.fingerprint },
        product: 'muster',
        productVersion: '0.1.0-test',
        ...overrides,
      }),
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      const exited = new Promise<number | null>((resolve) =>
        child.once('exit', (code) => resolve(code)),
      );
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      const code = await exited;
      clearTimeout(timer);
      started.delete(agent);
      return code;
    },
    kill: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill('SIGKILL');
      await exited;
      started.delete(agent);
    },
  };
  started.add(agent);
  return agent;
}

/** Kills every agent still running and removes the given temp dirs; call from `after`. */
export async function cleanup(dirs: string[] = []): Promise<void> {
  await Promise.all([...started].map((a) => a.kill()));
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
}

/** Polls until `check` returns true, or fails after `timeoutMs`. */
export async function waitFor(
  check: () => boolean | Promise<boolean>,
  timeoutMs = 10_000,
  what = 'condition',
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
