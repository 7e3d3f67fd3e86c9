/**
 * Starts real `muster coordinator` processes for end-to-end tests (port 0 on loopback, temp
 * data dir, admin password from the environment) and talks to their API.
 */
import type { ChildProcess } from 'node:child_process';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import { createHash } from 'node:crypto';
import type { BuildView } from '../../src/api/views/builds.js';
import { makeTempDir, waitFor, type StartedAgent } from './agent-process.js';
import { spawnDaemon } from './daemon.js';
import { hold, release, removeMadeDirs } from './temp-dirs.js';

export const ADMIN_PASSWORD = 'test-admin-password';

export interface StartedCoordinator {
  process: ChildProcess;
  url: string;
  dataDir: string;
  token: string;
  logs: Record<string, unknown>[];
  /** Logs in as admin (again): a backup has no users until its first snapshot. */
  login(): Promise<void>;
  /** Waits until /readyz says ready (a backup: once it holds its primary's state), then logs in. */
  loginWhenReady(timeoutMs?: number): Promise<void>;
  api<T = unknown>(
    method: string,
    path: string,
    body?: unknown,
  ): Promise<{ status: number; body: T }>;
  addAgent(name: string, agent: StartedAgent, labels?: string[]): Promise<void>;
  waitForBuild(id: number, timeoutMs?: number): Promise<BuildView>;
  /** Polls until the build's task has this status; returns the build as then seen. */
  waitForTask(id: number, task: string, status: string): Promise<BuildView>;
  /** Uploads bytes as a blob (PUT /blobs/:sha256, expecting 204); returns the hash. */
  putBlob(data: Buffer): Promise<string>;
  kill(): Promise<void>;
  stop(): Promise<void>;
}

const started = new Set<StartedCoordinator>();
/** Data dirs startCoordinator made itself: killCoordinators removes them. */
const ownDataDirs = new Set<string>();

/** The loopback certificate scripts/run-tests.js makes (trusted through NODE_EXTRA_CA_CERTS). */
export function testTls(): { cert: string; key: string } {
  const cert = process.env.MUSTER_TEST_TLS_CERT;
  const key = process.env.MUSTER_TEST_TLS_KEY;
  if (!cert || !key)
    throw new Error('run the tests with npm test (scripts/run-tests.js makes the TLS certificate)');
  return { cert, key };
}

export async function startCoordinator(
  options: {
    dataDir?: string;
    args?: string[];
    env?: NodeJS.ProcessEnv;
    /** Serve HTTPS with the test certificate. */
    tls?: boolean;
    /** Log in as admin at start (default); a fresh backup has no users yet. */
    login?: boolean;
    listen?: string;
    /** The program to run instead of this Node with the bundled CLI (a release's bin/muster). */
    command?: string;
  } = {},
): Promise<StartedCoordinator> {
  const dataDir = options.dataDir ?? (await makeTempDir('muster-coord-'));
  if (options.dataDir === undefined) ownDataDirs.add(dataDir);
  const tlsArgs = options.tls ? ['--tls-cert', testTls().cert, '--tls-key', testTls().key] : [];
  const daemon = await spawnDaemon(
    [
      'coordinator',
      '--listen',
      options.listen ?? '127.0.0.1:0',
      '--data',
      dataDir,
      '--log-level',
      'info',
      ...tlsArgs,
      ...(options.args ?? []),
    ],
    {
      env: { MUSTER_ADMIN_PASSWORD: ADMIN_PASSWORD, ...options.env },
      ...(options.command ? { command: options.command } : {}),
      isReady: (entry) => entry.msg === 'listening' && typeof entry.url === 'string',
    },
  );
  // Held while it runs: a restart on the same dir (restartCoordinator) must find it there.
  hold(dataDir);
  let released = false;
  const letGo = (): void => {
    if (!released) release(dataDir);
    released = true;
  };
  const child = daemon.child;
  const logs = daemon.logs;
  const url = daemon.ready.url as string;
  const api = async <T>(
    method: string,
    path: string,
    body?: unknown,
    token?: string,
  ): Promise<{ status: number; body: T }> => {
    const response = await fetch(`${url}/api/v1${path}`, {
      method,
      headers: {
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        ...(token ? { authorization: `Bearer ${token}` } : {}),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(30_000),
    });
    const text = await response.text();
    return { status: response.status, body: (text ? JSON.parse(text) : null) as T };
  };
  let token = '';
  const login = async (): Promise<void> => {
    const response = await api<{ token: string }>('POST', '/login', {
      user: 'admin',
      password: ADMIN_PASSWORD,
    });
    if (response.status !== 200) throw new Error(`login failed: ${JSON.stringify(response.body)}`);
    token = response.body.token;
    coordinator.token = token;
  };
  const coordinator: StartedCoordinator = {
    process: child,
    url,
    dataDir,
    token,
    logs,
    login,
    loginWhenReady: async (timeoutMs = 20_000) => {
      await waitFor(
        async () => (await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(5000) })).ok,
        timeoutMs,
        `${url} to be ready`,
      );
      await login();
    },
    api: (method, path, body) => api(method, path, body, token),
    addAgent: async (name, agent, labels = []) => {
      const response = await api(
        'POST',
        '/agents',
        {
          name,
          address: `127.0.0.1:${agent.port}`,
          accessKey: agent.accessKey,
          ...(agent.fingerprint ? { fingerprint: agent.fingerprint } : { tls: false }),
          labels,
        },
        token,
      );
      if (response.status !== 201)
        throw new Error(`adding ${name}: ${JSON.stringify(response.body)}`);
    },
    waitForBuild: async (id, timeoutMs = 60_000) => {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const { body } = await api<BuildView>('GET', `/builds/${id}`, undefined, token);
        if (body.status !== 'queued' && body.status !== 'running') return body;
        if (Date.now() > deadline)
          throw new Error(`build ${id} did not finish: ${JSON.stringify(body)}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    },
    waitForTask: async (id, task, status) => {
      let last: BuildView | undefined;
      await waitFor(
        async () => {
          last = (await api<BuildView>('GET', `/builds/${id}`, undefined, token)).body;
          return last.tasks.find((t) => t.name === task)?.status === status;
        },
        30_000,
        `task ${task} to be ${status}`,
      );
      return last!;
    },
    putBlob: async (data) => {
      const sha256 = createHash('sha256').update(data).digest('hex');
      const response = await fetch(`${url}/api/v1/blobs/${sha256}`, {
        method: 'PUT',
        headers: { 'content-type': 'application/octet-stream', authorization: `Bearer ${token}` },
        body: data,
        signal: AbortSignal.timeout(60_000),
      });
      if (response.status !== 204) throw new Error(`upload ${sha256}: ${await response.text()}`);
      return sha256;
    },
    kill: async () => {
      await daemon.kill();
      started.delete(coordinator);
      letGo();
    },
    stop: async () => {
      await daemon.stop();
      started.delete(coordinator);
      letGo();
    },
  };
  started.add(coordinator);
  if (options.login ?? true) await login();
  return coordinator;
}

/** Starts `old`'s coordinator again: same data dir, same address (clients and backups keep it). */
export function restartCoordinator(
  old: StartedCoordinator,
  options: Parameters<typeof startCoordinator>[0] = {},
): Promise<StartedCoordinator> {
  return startCoordinator({ ...options, dataDir: old.dataDir, listen: new URL(old.url).host });
}

/** Kills every coordinator still running, then removes the data dirs startCoordinator made. */
export async function killCoordinators(): Promise<void> {
  await Promise.all([...started].map((c) => c.kill()));
  await removeMadeDirs(ownDataDirs);
}

/** Uploads a folder's files as blobs and registers it as an extension (what `muster extensions add` does). */
export async function uploadExtension(
  coordinator: StartedCoordinator,
  dir: string,
  name: string,
  version: string,
): Promise<void> {
  const files: { path: string; sha256: string; size: number; mode: number; data: Buffer }[] = [];
  const walk = async (current: string): Promise<void> => {
    for (const entry of await readdir(current)) {
      const abs = join(current, entry);
      const info = await stat(abs);
      if (info.isDirectory()) await walk(abs);
      else {
        const data = await readFile(abs);
        files.push({
          path: relative(dir, abs).split(sep).join('/'),
          sha256: createHash('sha256').update(data).digest('hex'),
          size: data.length,
          mode: info.mode & 0o777,
          data,
        });
      }
    }
  };
  await walk(dir);
  for (const file of files) await coordinator.putBlob(file.data);
  const response = await coordinator.api('POST', '/extensions', {
    name,
    version,
    files: files.map(({ path, sha256, size, mode }) => ({ path, sha256, size, mode })),
  });
  if (response.status !== 201) throw new Error(`extension: ${JSON.stringify(response.body)}`);
}
