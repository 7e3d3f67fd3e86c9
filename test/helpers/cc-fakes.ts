/**
 * Fakes of the compile service's ports to the coordinator (src/cli/cc/ports.ts) for its unit
 * tests: a recorder that keeps the records, a shared cache in memory that serves what was stored
 * as the coordinator would, and remote jobs that run each job as an agent would — through the
 * cc extension's compile operation with this machine's gcc made into a shipped toolchain — or
 * answer what a test says.
 */
import { createHash } from 'node:crypto';
import { chmod, copyFile, mkdir, mkdtemp, readFile, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { compileJobKey } from '../../src/api/compile-job-key.js';
import type { CompileRecord } from '../../src/api/requests-types.js';
import type { CacheLookupView, CompileJobView } from '../../src/api/views/compile.js';
import type { CompileJobRequest } from '../../src/cli/api-client.js';
import type {
  JobRecorder,
  NewCompileResult,
  RemoteJobs,
  RemoteSession,
  SharedCache,
  ToolchainState,
} from '../../src/cli/cc/ports.js';
import type { Toolchain } from '../../src/cli/cc/toolchain.js';
import { compileOperation } from '../../src/extensions/cc/compile.js';
import type { OperationContext } from '../../src/host/extensions.js';

export const sha256 = (data: Buffer | string): string =>
  createHash('sha256').update(data).digest('hex');

/**
 * The file hashes' clock an hour ahead, so files a test has just written are not "too new"
 * (the 2 s rule would keep every one of them out of the cache).
 */
export const hourAhead = {
  stat: (p: string) => stat(p, { bigint: true }),
  readFile: (p: string) => readFile(p),
  now: () => (BigInt(Date.now()) + 3_600_000n) * 1_000_000n,
  maxEntries: 10_000,
};

/** Polls `check` until it holds (bounded: rejects naming `what` after `ms`). */
export function until(check: () => boolean, what: string, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  return new Promise((resolve, reject) => {
    const poll = (): void => {
      if (check()) resolve();
      else if (Date.now() > deadline) reject(new Error(`timed out waiting for ${what}`));
      else setTimeout(poll, 20);
    };
    poll();
  });
}

export class FakeRecorder implements JobRecorder {
  readonly records: CompileRecord[] = [];
  remote = 0;
  record(r: CompileRecord): void {
    this.records.push(r);
  }
  noteRemote(): void {
    this.remote++;
  }
  async close(): Promise<void> {}
}

type Entry = CacheLookupView['entries'][number];

/** A shared cache that keeps what is stored, in memory, and serves it as the coordinator would. */
export class InMemorySharedCache implements SharedCache {
  readonly blobs = new Map<string, Buffer>();
  readonly entries = new Map<string, Entry>();
  readonly manifests = new Map<string, CacheLookupView['manifest']>();
  readonly lookups: { direct?: string; keys?: string[] }[] = [];
  stores = 0;
  fetched = 0;

  put(data: Buffer): { sha256: string; size: number } {
    const hash = sha256(data);
    this.blobs.set(hash, data);
    return { sha256: hash, size: data.length };
  }

  async lookup(request: { direct?: string; keys?: string[] }): Promise<CacheLookupView> {
    this.lookups.push(request);
    const manifest = this.manifests.get(request.direct ?? '') ?? [];
    const keys = new Set([...(request.keys ?? []), ...manifest.map((l) => l.entry)]);
    const entries = [...keys].flatMap((k) => this.entries.get(k) ?? []);
    return { manifest, entries };
  }

  async fetchBlob(hash: string): Promise<Buffer> {
    this.fetched++;
    const blob = this.blobs.get(hash);
    if (blob === undefined) throw new Error('no such blob');
    return blob;
  }

  async store(result: NewCompileResult): Promise<void> {
    this.stores++;
    this.entries.set(result.key, {
      key: result.key,
      kind: 'compile',
      outputs: result.outputs.map((o) => ({ name: o.name, mode: o.mode, ...this.put(o.data) })),
      stderr: result.stderr.length === 0 ? null : this.put(result.stderr),
      exitCode: 0,
      toolchain: result.toolchain.id,
      source: 'client',
      createdAt: new Date().toISOString(),
    });
    if (result.manifest !== undefined) {
      const lines = this.manifests.get(result.manifest.direct) ?? [];
      this.manifests.set(result.manifest.direct, [
        { includes: result.manifest.includes, entry: result.key },
        ...lines,
      ]);
    }
  }
}

/** The toolchain as an agent's bundle lays it out: `<root>/<id>/…` and `<root>/<id>.json`. */
export async function materialiseToolchain(toolchain: Toolchain, root: string): Promise<void> {
  for (const file of toolchain.files) {
    const to = join(root, toolchain.id, file.path);
    await mkdir(dirname(to), { recursive: true });
    await copyFile(file.source, to);
    await chmod(to, file.mode);
  }
  await writeFile(
    join(root, `${toolchain.id}.json`),
    JSON.stringify({ glibc: toolchain.glibc, driver: toolchain.driver }),
  );
}

/** What cc/compile gets from a host, for a task in `workDir`. */
export function operationContext(workDir: string, n = 1): OperationContext {
  return {
    taskId: `job-${n}`,
    workDir,
    env: {},
    signal: new AbortController().signal,
    stdout: () => undefined,
    stderr: () => undefined,
    log: () => undefined,
    trackProcess: () => undefined,
    untrackProcess: () => undefined,
  };
}

type Answer = Omit<CompileJobView, 'task' | 'cacheKey'>;

/** The key of the one session FakeRemoteJobs has open (build 7). */
export const FAKE_SESSION_KEY = '7'.padStart(32, '0');

/**
 * Remote jobs run by the cc extension's compile operation in a fresh work dir under `scratch`
 * (the coordinator's part: the result goes to `agentCache` under the job's key, as the
 * coordinator keeps it), or answered by `answer` when a test sets it.
 */
export class FakeRemoteJobs implements RemoteJobs {
  readonly texts = new Map<string, Buffer>();
  readonly jobs: CompileJobRequest[] = [];
  readonly registered = new Set<string>();
  ensureCalls = 0;
  capacity: RemoteSession['capacity'] = {
    agents: [{ name: 'agent-1', slots: 2, sameMachine: false }],
  };
  sessionsAsked = 0;
  /** A canned answer instead of running the job. */
  answer: ((job: CompileJobRequest) => Answer) | undefined;
  readonly objects = new Map<string, Buffer>();

  constructor(
    private readonly scratch: string,
    private readonly agentCache?: InMemorySharedCache,
  ) {}

  /** No session can be had (the coordinator stopped answering). */
  noSession = false;

  async session(): Promise<RemoteSession | null> {
    this.sessionsAsked++;
    if (this.noSession) return null;
    return { buildId: 7, key: FAKE_SESSION_KEY, capacity: this.capacity };
  }

  /** Answers `registering` (as while an upload is in flight) and registers nothing. */
  holdRegistration = false;

  async toolchainState(toolchain: Toolchain): Promise<ToolchainState> {
    if (this.holdRegistration) return 'registering';
    await this.ensureToolchain(toolchain);
    return 'ready';
  }

  async ensureToolchain(toolchain: Toolchain): Promise<void> {
    this.ensureCalls++;
    if (this.registered.has(toolchain.id)) return;
    await materialiseToolchain(toolchain, join(this.scratch, 'toolchains'));
    this.registered.add(toolchain.id);
  }

  async putText(hash: string, data: Buffer): Promise<void> {
    if (sha256(data) !== hash) throw new Error('the text is not its hash');
    this.texts.set(hash, data);
  }

  async submit(session: string, job: CompileJobRequest): Promise<CompileJobView> {
    if (session !== FAKE_SESSION_KEY) throw new Error(`session ${session} is not the open one`);
    this.jobs.push(job);
    const n = this.jobs.length;
    const cacheKey = compileJobKey(job);
    if (this.answer !== undefined) return { task: `job-${n}`, cacheKey, ...this.answer(job) };
    const text = this.texts.get(job.source.sha256);
    if (text === undefined || !this.registered.has(job.input.toolchain))
      throw new Error('the text or the toolchain was not uploaded first');
    const work = await mkdtemp(join(this.scratch, 'work-'));
    await mkdir(dirname(join(work, job.source.path)), { recursive: true });
    await writeFile(join(work, job.source.path), text);
    const result = await compileOperation({ toolchainsRoot: join(this.scratch, 'toolchains') })(
      job.input,
      operationContext(work, n),
    );
    let object: CompileJobView['object'] = null;
    const output = result.outputs[0];
    if (result.exitCode === 0 && output !== undefined) {
      const data = await readFile(join(work, output.path));
      object = { sha256: sha256(data), size: data.length };
      this.objects.set(object.sha256, data);
      if (result.stderrBytes === 0 && this.agentCache !== undefined) {
        this.agentCache.entries.set(cacheKey, {
          key: cacheKey,
          kind: 'compile',
          outputs: [{ name: 'object', mode: 0o644, ...this.agentCache.put(data) }],
          stderr: null,
          exitCode: 0,
          toolchain: job.input.toolchain,
          source: 'agent',
          createdAt: new Date().toISOString(),
        });
      }
    }
    return {
      task: `job-${n}`,
      status: result.exitCode === 0 ? 'succeeded' : 'failed',
      agent: 'agent-1',
      exitCode: result.exitCode,
      stderr: result.stderr,
      stderrBytes: result.stderrBytes,
      object,
      cacheKey,
      reason: null,
      error: null,
    };
  }

  async fetchObject(hash: string, size: number): Promise<Buffer> {
    const data = this.objects.get(hash);
    if (data === undefined || data.length !== size) throw new Error('no such object');
    return data;
  }
}
