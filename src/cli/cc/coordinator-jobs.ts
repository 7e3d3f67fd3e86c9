/**
 * Remote compile jobs on the coordinator (ports.ts `RemoteJobs`) over the CLI's API client:
 *
 * - a toolchain is asked for once per service and id (GET /toolchains/:id); one the coordinator
 *   lacks is uploaded — only the blobs it does not have, each file checked against the hash it
 *   was discovered with — and registered (PUT /toolchains/:id). That runs in the background from
 *   the first compile that needs it (an upload is ~80 MB): compiles ask `toolchainState` (which
 *   waits for the first GET only) and are compiled here (`toolchain-registering`) until it is
 *   registered and an agent has it (the answer's `agents`, asked again at most once a second,
 *   for at most a minute: then jobs go and the coordinator's answer says why one cannot run).
 *   A failed registration is tried again a minute later — one that failed for want of an answer
 *   as soon as the guard lets requests through again (the coordinator, or its backup, answers);
 * - the job waits as long as its own limits say (the queue wait and the compile's timeout) plus
 *   a margin for the transfers: a compile takes the time it takes;
 * - answers are checked (coordinator-answers.ts), objects fetched through the one checked blob
 *   fetch (coordinator-cache.ts).
 *
 * Shares the guard of the shared cache: a coordinator that did not answer is left alone a while.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { ApiClient, CompileJobRequest } from '../api-client.js';
import type { CompileJobView } from '../../api/views/compile.js';
import { MusterError } from '../../protocol/errors.js';
import { checkAnswer, compileJobAnswer } from './coordinator-answers.js';
import { fetchCheckedBlob } from './coordinator-cache.js';
import { CoordinatorGuard, isNoAnswer } from './coordinator-guard.js';
import type { RemoteJobs, RemoteSession, ToolchainState } from './ports.js';
import type { Toolchain } from './toolchain.js';

type JobsApi = Pick<
  ApiClient,
  'getToolchain' | 'missingBlobs' | 'putBlob' | 'putToolchain' | 'submitCompileJob' | 'getBlob'
>;

/** compileJobBody's defaults, for the HTTP wait of a job that does not give its own. */
const DEFAULT_MAX_QUEUE_MS = 100;
const DEFAULT_COMPILE_TIMEOUT_MS = 600_000;
/** On top of the job's own limits: the text's and the answer's way through the coordinator. */
const TRANSFER_MARGIN_MS = 30_000;

/** A registration the coordinator refused is not tried again for this long. */
const REGISTRATION_RETRY_MS = 60_000;

export interface RegistrationTiming {
  /** A registered toolchain no agent has yet: asked again at most this often. */
  readonly pollMs: number;
  /** …and for at most this long after its registration; then jobs go anyway. */
  readonly syncGraceMs: number;
}

const DEFAULT_TIMING: RegistrationTiming = { pollMs: 1_000, syncGraceMs: 60_000 };

interface Registration {
  /** The coordinator asked whether it has the toolchain (one quick request): the state is set. */
  readonly asked: Promise<void>;
  /** The registration (asked, uploaded, registered): the agents that have it then. */
  readonly done: Promise<string[]>;
  /** registering: the upload runs; syncing: registered, no agent had it when last asked. */
  state: 'asking' | 'registering' | 'syncing' | 'ready' | 'failed';
  failure: 'no-coordinator' | 'remote-error';
  /** When the registration ended (syncing: since when no agent had it). */
  registeredAt: number;
  lastPoll: number;
  polling: boolean;
}

export class CoordinatorJobs implements RemoteJobs {
  readonly #registrations = new Map<string, Registration>();

  constructor(
    private readonly api: JobsApi,
    private readonly openSession: () => Promise<RemoteSession | null>,
    private readonly guard: CoordinatorGuard = new CoordinatorGuard(),
    private readonly retryMs: number = REGISTRATION_RETRY_MS,
    private readonly timing: RegistrationTiming = DEFAULT_TIMING,
  ) {}

  session(): Promise<RemoteSession | null> {
    return this.openSession();
  }

  /**
   * The registration of a toolchain, started once per id (compiles that need it meanwhile share
   * it); resolves with the agents that have it. A failure is remembered for `retryMs` — not
   * retried per compile: a refusal would otherwise cost a round of requests per compile.
   */
  ensureToolchain(toolchain: Toolchain): Promise<string[]> {
    return this.#registration(toolchain).done;
  }

  /**
   * Waits only for the first question (does the coordinator have it, which agents): a build
   * whose compiler is registered and synced sends its first compiles away too. The upload runs
   * in the background.
   */
  async toolchainState(toolchain: Toolchain): Promise<ToolchainState> {
    const r = this.#registration(toolchain);
    await r.asked;
    if (r.state === 'failed') return r.failure;
    if (r.state === 'syncing') {
      const now = Date.now();
      if (now - r.registeredAt >= this.timing.syncGraceMs) r.state = 'ready';
      else if (!r.polling && now - r.lastPoll >= this.timing.pollMs) this.#poll(toolchain.id, r);
    }
    return r.state === 'ready' ? 'ready' : 'registering';
  }

  #registration(toolchain: Toolchain): Registration {
    const known = this.#registrations.get(toolchain.id);
    const unanswered = known?.state === 'failed' && known.failure === 'no-coordinator';
    if (known !== undefined && !(unanswered && !this.guard.paused)) return known;
    const id = toolchain.id;
    const registered = (agents: string[]): void => {
      if (r.state !== 'asking' && r.state !== 'registering') return;
      r.registeredAt = Date.now();
      r.lastPoll = r.registeredAt;
      r.state = agents.length > 0 ? 'ready' : 'syncing';
    };
    const failed = (err: unknown): void => {
      if (r.state === 'failed') return;
      r.state = 'failed';
      r.failure = isNoAnswer(err) ? 'no-coordinator' : 'remote-error';
      const forget = setTimeout(() => {
        if (this.#registrations.get(id) === r) this.#registrations.delete(id);
      }, this.retryMs);
      forget.unref();
    };
    // null: the coordinator does not have it.
    const found = this.guard.run(async () => {
      try {
        return (await this.api.getToolchain(id)).agents;
      } catch (err) {
        if (err instanceof MusterError && err.code === 'NOT_FOUND') return null;
        throw err;
      }
    });
    const asked = found.then((agents) => {
      if (agents === null) r.state = 'registering';
      else registered(agents);
    }, failed);
    const done = found.then((agents) => agents ?? this.guard.run(() => this.#upload(toolchain)));
    const r: Registration = {
      asked,
      done,
      state: 'asking',
      failure: 'remote-error',
      registeredAt: 0,
      lastPoll: 0,
      polling: false,
    };
    this.#registrations.set(id, r);
    done.then(registered, failed);
    return r;
  }

  /** Asks whether an agent has a registered toolchain now (in the background, one at a time). */
  #poll(id: string, r: Registration): void {
    r.polling = true;
    r.lastPoll = Date.now();
    this.guard
      .run(() => this.api.getToolchain(id))
      .then(
        (found) => {
          if (r.state === 'syncing' && found.agents.length > 0) r.state = 'ready';
        },
        // Asked again after pollMs; the coordinator's guard keeps a silent one quiet.
        () => undefined,
      )
      .finally(() => {
        r.polling = false;
        r.lastPoll = Date.now();
      });
  }

  /** Uploads the blobs the coordinator lacks and registers the toolchain: its agents then. */
  async #upload(toolchain: Toolchain): Promise<string[]> {
    const missing = new Set(
      await this.api.missingBlobs([...new Set(toolchain.files.map((f) => f.sha256))]),
    );
    for (const file of toolchain.files) {
      if (!missing.delete(file.sha256)) continue;
      const data = await readFile(file.source);
      if (createHash('sha256').update(data).digest('hex') !== file.sha256)
        throw new MusterError(
          'BLOB_HASH_MISMATCH',
          `${file.source} changed since the toolchain ${toolchain.id} was made of it`,
        );
      await this.api.putBlob(file.sha256, data);
    }
    const registered = await this.api.putToolchain(toolchain.id, {
      files: toolchain.files.map((f) => ({
        path: f.path,
        sha256: f.sha256,
        size: f.size,
        mode: f.mode,
      })),
      info: {
        driver: toolchain.driver,
        triple: toolchain.triple,
        version: toolchain.version,
        glibc: toolchain.glibc,
      },
    });
    return registered.agents;
  }

  putText(sha256: string, data: Buffer): Promise<void> {
    return this.guard.run(() => this.api.putBlob(sha256, data));
  }

  submit(session: string, job: CompileJobRequest): Promise<CompileJobView> {
    const waitMs =
      (job.maxQueueMs ?? DEFAULT_MAX_QUEUE_MS) +
      (job.timeoutMs ?? DEFAULT_COMPILE_TIMEOUT_MS) +
      TRANSFER_MARGIN_MS;
    return this.guard.run(async () =>
      checkAnswer(
        compileJobAnswer,
        await this.api.submitCompileJob(session, job, waitMs),
        'remote job answer',
      ),
    );
  }

  fetchObject(sha256: string, size: number): Promise<Buffer> {
    return this.guard.run(() => fetchCheckedBlob(this.api, sha256, size));
  }
}
