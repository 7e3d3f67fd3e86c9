/**
 * Remote compile jobs on the coordinator (ports.ts `RemoteJobs`) over the CLI's API client:
 *
 * - a toolchain is asked for once per service and id (GET /toolchains/:id); one the coordinator
 *   lacks is uploaded — only the blobs it does not have, each file checked against the hash it
 *   was discovered with — and registered (PUT /toolchains/:id). Compiles that need it at the same
 *   time wait for the same registration; a failed one is tried again a minute later;
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
import { CoordinatorGuard } from './coordinator-guard.js';
import type { RemoteJobs, RemoteSession } from './ports.js';
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

export class CoordinatorJobs implements RemoteJobs {
  readonly #registered = new Map<string, Promise<void>>();

  constructor(
    private readonly api: JobsApi,
    private readonly openSession: () => Promise<RemoteSession | null>,
    private readonly guard: CoordinatorGuard = new CoordinatorGuard(),
    private readonly retryMs: number = REGISTRATION_RETRY_MS,
  ) {}

  session(): Promise<RemoteSession | null> {
    return this.openSession();
  }

  ensureToolchain(toolchain: Toolchain): Promise<void> {
    let done = this.#registered.get(toolchain.id);
    if (done === undefined) {
      done = this.guard.run(() => this.#register(toolchain));
      this.#registered.set(toolchain.id, done);
      // A failure is the callers' to report (each compiles here); a compile after `retryMs`
      // asks again — not every compile: a refusal (Cache.AcceptClientResults off, a viewer)
      // would otherwise cost a round of requests per compile.
      const id = toolchain.id;
      done.catch(() => {
        const forget = setTimeout(() => this.#registered.delete(id), this.retryMs);
        forget.unref();
      });
    }
    return done;
  }

  async #register(toolchain: Toolchain): Promise<void> {
    try {
      await this.api.getToolchain(toolchain.id);
      return;
    } catch (err) {
      if (!(err instanceof MusterError && err.code === 'NOT_FOUND')) throw err;
    }
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
    await this.api.putToolchain(toolchain.id, {
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
  }

  putText(sha256: string, data: Buffer): Promise<void> {
    return this.guard.run(() => this.api.putBlob(sha256, data));
  }

  submit(buildId: number, job: CompileJobRequest): Promise<CompileJobView> {
    const waitMs =
      (job.maxQueueMs ?? DEFAULT_MAX_QUEUE_MS) +
      (job.timeoutMs ?? DEFAULT_COMPILE_TIMEOUT_MS) +
      TRANSFER_MARGIN_MS;
    return this.guard.run(async () =>
      checkAnswer(
        compileJobAnswer,
        await this.api.submitCompileJob(buildId, job, waitMs),
        'remote job answer',
      ),
    );
  }

  fetchObject(sha256: string, size: number): Promise<Buffer> {
    return this.guard.run(() => fetchCheckedBlob(this.api, sha256, size));
  }
}
