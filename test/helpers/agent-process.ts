/**
 * Starts real `muster agent` processes for end-to-end tests: port 0 on loopback, a temp data
 * dir, the listening line parsed from the JSON log, and a kill that always cleans up.
 */
import { newInstanceKey } from '../../src/protocol/handshake.js';
import { execFile, type ChildProcess } from 'node:child_process';
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { AgentClient, type AgentClientOptions } from '../../src/protocol/client/agent-client.js';
import { RawAgentClient, type RawAgentClientOptions } from './raw-agent-client.js';

import { cliPath, spawnDaemon } from './daemon.js';
import {
  hold,
  madeDirs,
  makeSharedDir,
  makeTempDir,
  release,
  removeMadeDirs,
  removeTree,
} from './temp-dirs.js';

export { cliPath, makeSharedDir, makeTempDir };

/** The instance key every connection of this test process claims its instance ids with. */
export const TEST_INSTANCE_KEY = newInstanceKey();

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
  /** A client that can also send raw frames (see raw-agent-client.ts). */
  connectRaw(options?: Partial<RawAgentClientOptions>): Promise<RawAgentClient>;
  /** SIGTERM, then SIGKILL after 10 s; resolves with the exit code. */
  stop(): Promise<number | null>;
  kill(): Promise<void>;
}

const started = new Set<StartedAgent>();
/** Every data dir an agent of this test process used: its task users are removed in cleanup(). */
const dataDirs = new Set<string>();

/** The task users recorded in an agent's data dir (docs/agent.md, "Task users"). */
export async function taskUsersOf(dataDir: string): Promise<string[]> {
  const names: string[] = [];
  const recordsDir = join(dataDir, 'instances');
  for (const file of await readdir(recordsDir).catch(() => [] as string[])) {
    if (!file.endsWith('.json')) continue;
    try {
      const record = JSON.parse(await readFile(join(recordsDir, file), 'utf8')) as {
        taskUser?: { name?: unknown } | null;
      };
      if (typeof record.taskUser?.name === 'string') names.push(record.taskUser.name);
    } catch {
      // not a record
    }
  }
  return names;
}

/**
 * Removes the task users an agent created (tests run as root would otherwise leave one system
 * user per instance behind), for the given data dirs and their direct subdirs (muster up).
 */
export async function removeTaskUsers(dirs: Iterable<string>): Promise<void> {
  if (process.getuid?.() !== 0) return;
  const names = new Set<string>();
  for (const dir of dirs) {
    for (const name of await taskUsersOf(dir)) names.add(name);
    for (const sub of await readdir(dir).catch(() => [] as string[])) {
      for (const name of await taskUsersOf(join(dir, sub))) names.add(name);
    }
  }
  for (const name of names) {
    await new Promise<void>((resolve) => execFile('userdel', ['-f', name], () => resolve()));
  }
}

export async function startAgent(
  options: {
    dataDir?: string;
    args?: string[];
    env?: NodeJS.ProcessEnv;
    listen?: string;
    /** The program to run instead of this Node with the bundled CLI (a release's bin/muster). */
    command?: string;
  } = {},
): Promise<StartedAgent> {
  const dataDir = options.dataDir ?? (await makeTempDir());
  dataDirs.add(dataDir);
  const daemon = await spawnDaemon(
    [
      'agent',
      '--listen',
      options.listen ?? '127.0.0.1:0',
      '--data',
      dataDir,
      ...(options.args ?? []),
    ],
    {
      ...(options.env ? { env: options.env } : {}),
      ...(options.command ? { command: options.command } : {}),
      isReady: (entry) => entry.msg === 'listening',
    },
  );
  hold(dataDir);
  let released = false;
  const letGo = (): void => {
    if (!released) release(dataDir);
    released = true;
  };
  const child = daemon.child;
  const listening = daemon.ready;
  const accessKeyArg = options.args?.indexOf('--access-key') ?? -1;
  const accessKey =
    accessKeyArg >= 0
      ? options.args![accessKeyArg + 1]!
      : (await readFile(join(dataDir, 'access-key'), 'utf8')).trim();
  const clientOptions = (overrides: Partial<RawAgentClientOptions>): RawAgentClientOptions => ({
    host: '127.0.0.1',
    port: agent.port,
    accessKey: agent.accessKey,
    tls: agent.fingerprint === undefined ? false : { fingerprint: agent.fingerprint },
    product: 'muster',
    productVersion: '0.1.0-test',
    // One coordinator's key for the whole test process, unless a test plays another one.
    instanceKey: TEST_INSTANCE_KEY,
    ...overrides,
  });
  const agent: StartedAgent = {
    process: child,
    host: listening.host as string,
    port: listening.port as number,
    fingerprint: listening.fingerprint as string | undefined,
    accessKey,
    dataDir,
    logs: daemon.logs,
    stderr: () => daemon.stderr(),
    connect: (overrides = {}) => AgentClient.connect(clientOptions(overrides)),
    connectRaw: (overrides = {}) => RawAgentClient.open(clientOptions(overrides)),
    stop: async () => {
      const code = await daemon.stop();
      started.delete(agent);
      letGo();
      return code;
    },
    kill: async () => {
      await daemon.kill();
      started.delete(agent);
      letGo();
    },
  };
  started.add(agent);
  return agent;
}

export interface DialingAgent {
  process: ChildProcess;
  agentId: string;
  dataDir: string;
  logs: Record<string, unknown>[];
  stderr: () => string;
  stop(): Promise<number | null>;
  kill(): Promise<void>;
}

/**
 * `muster agent --connect URL` (no listener): ready once it says it dials out; `wrapper` runs it
 * elsewhere (`ip netns exec NAME`, test/helpers/netns.ts).
 */
export async function startDialingAgent(
  url: string,
  options: { joinToken?: string; dataDir?: string; args?: string[]; wrapper?: string[] } = {},
): Promise<DialingAgent> {
  const dataDir = options.dataDir ?? (await makeTempDir());
  dataDirs.add(dataDir);
  const daemon = await spawnDaemon(
    [
      'agent',
      '--connect',
      url,
      ...(options.joinToken === undefined ? [] : ['--join-token', options.joinToken]),
      '--data',
      dataDir,
      ...(options.args ?? []),
    ],
    {
      ...(options.wrapper ? { wrapper: options.wrapper } : {}),
      isReady: (entry) => entry.msg === 'dialing out (not listening)',
    },
  );
  hold(dataDir);
  let released = false;
  const letGo = (): void => {
    if (!released) release(dataDir);
    released = true;
  };
  const agent: DialingAgent = {
    process: daemon.child,
    agentId: daemon.ready.agentId as string,
    dataDir,
    logs: daemon.logs,
    stderr: () => daemon.stderr(),
    stop: async () => {
      const code = await daemon.stop();
      dialing.delete(agent);
      letGo();
      return code;
    },
    kill: async () => {
      await daemon.kill();
      dialing.delete(agent);
      letGo();
    },
  };
  dialing.add(agent);
  return agent;
}

const dialing = new Set<DialingAgent>();

/**
 * Kills every agent still running, removes their task users, the given dirs and every dir
 * makeTempDir/makeSharedDir made in this process that no running process holds (a coordinator's
 * data dir stays until killCoordinators); call from the file's last `after`.
 */
export async function cleanup(dirs: string[] = []): Promise<void> {
  await Promise.all([...started, ...dialing].map((a) => a.kill()));
  await removeTaskUsers(new Set([...dataDirs, ...dirs, ...madeDirs()]));
  dataDirs.clear();
  await Promise.all(dirs.map(removeTree));
  await removeMadeDirs();
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
