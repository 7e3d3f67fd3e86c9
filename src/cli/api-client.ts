/**
 * The coordinator's REST API (/api/v1) as typed methods, over node:http and node:https
 * (http-transport.ts, one keep-alive pool per client; not Node's fetch, whose loading alone costs
 * a CLI process more CPU than its requests). Every failure becomes
 * a MusterError: the server's `{ error: { code, message, details } }` as is, a connection that
 * cannot be made (refused, DNS, TLS, timeout) as UNREACHABLE.
 *
 * HTTPS with a self-signed or private-CA coordinator certificate: either the user confirmed its
 * SHA-256 fingerprint at `muster login` (or gave MUSTER_FINGERPRINT), and every request to that
 * URL goes over a connection whose certificate matched that pin inside the handshake, before the
 * token is written (connectPinned in src/common/pinned-tls.ts); or Node trusts it through
 * NODE_EXTRA_CA_CERTS (read when Node starts). Redirects are not followed: a 3xx is an error that
 * names where it points.
 *
 * Backups: a primary with a selected backup names it in the x-muster-backup header of every
 * answer; the client remembers it (backup-cache.ts). When the primary then cannot be reached, the
 * client repeats the request once at the backup with the same token (tokens are replicated) and,
 * if the backup answers, says so once on stderr and talks to the backup from then on — until
 * the backup refuses as standing by (STANDBY) after a failback: then the primary is asked again
 * and, if it answers, used again (said on stderr). A backup that is still standing by refuses
 * (STANDBY) too: then the primary's UNREACHABLE is reported, saying that its backup has not taken
 * over. The pin belongs to the configured coordinator only: a backup has a certificate of its
 * own, so the client verifies it the usual way (system roots, NODE_EXTRA_CA_CERTS, host name) and
 * one it does not trust is a TLS failure like any other: the token is never sent to it.
 */
import type { z } from 'zod';
import type { AgentView, CreatedJoinTokenView, JoinTokenView } from '../api/views/agents.js';
import type { AuditView } from '../api/views/audit.js';
import type { SecretView } from '../api/views/secrets.js';
import type { BackupView } from '../api/views/backups.js';
import type { BuildSummary, BuildView, LogsView } from '../api/views/builds.js';
import type {
  CertificateReplacedView,
  CertificateView,
  PlainHttpView,
} from '../api/views/certificates.js';
import type { EventMap } from '../api/events.js';
import type { ExtensionView } from '../api/views/extensions.js';
import type { LoginView, UserView } from '../api/views/users.js';
import type { StatusView } from '../api/views/status.js';
import type {
  addAgentBody,
  addExtensionBody,
  compileJobBody,
  createBuildBody,
  createCompileSessionBody,
  putCacheEntryBody,
  putCacheResultsBody,
  putManifestLineBody,
  putToolchainBody,
  updateAgentBody,
  createJoinTokenBody,
} from '../api/requests.js';
import type { CloseCompileSession, CompileRecord } from '../api/requests-types.js';
import type {
  CacheEntryView,
  CacheLookupView,
  CompileJobView,
  CompileSessionView,
  ToolchainView,
} from '../api/views/compile.js';
import type { BuildStatus } from '../api/status.js';
import { MusterError, isErrorCode, type ErrorCode } from '../protocol/errors.js';
import { BackupCache, backupsPath, type BackupDirectory } from './backup-cache.js';
import { loadCredentials, normaliseUrl } from './config.js';
import { formatDuration } from '../api/format.js';
import { HttpTransport, TimeoutError, type HttpResponse } from './http-transport.js';
import { readSse } from './sse.js';

export type AddAgentRequest = z.input<typeof addAgentBody>;
export type UpdateAgentRequest = z.input<typeof updateAgentBody>;
export type CreateJoinTokenRequest = z.input<typeof createJoinTokenBody>;
export type AddExtensionRequest = z.input<typeof addExtensionBody>;
export type CreateBuildRequest = z.input<typeof createBuildBody>;
export type CreateCompileSessionRequest = z.input<typeof createCompileSessionBody>;
export type PutCacheEntryRequest = z.input<typeof putCacheEntryBody>;
export type PutManifestLineRequest = z.input<typeof putManifestLineBody>;
export type PutCacheResultsRequest = z.input<typeof putCacheResultsBody>;
export type PutToolchainRequest = z.input<typeof putToolchainBody>;
export type CompileJobRequest = z.input<typeof compileJobBody>;

/** One server-sent event, its data parsed per EventMap. */
export type ApiEvent = {
  [K in keyof EventMap]: { event: K; data: EventMap[K]; id: string | undefined };
}[keyof EventMap];

export interface EventStream extends AsyncIterable<ApiEvent> {
  /** Ends the stream (the iteration finishes without an error). */
  close(): void;
}

export interface ApiClientOptions {
  /** The coordinator's base URL, e.g. http://127.0.0.1:8000 (without /api/v1). */
  url: string;
  token?: string | undefined;
  /**
   * The SHA-256 fingerprint pinned for `url` (https only): its certificate must match, checked
   * inside the handshake, and need not be trusted otherwise.
   */
  fingerprint?: string | undefined;
  /** Per request, headers and body (default 30 s; blobs get longer, see blobTimeoutMs). */
  timeoutMs?: number;
  /**
   * Where the selected backup of a primary is remembered. Without it the client neither learns
   * the backup nor switches to it (connect() passes <config dir>/backups.json).
   */
  backups?: BackupDirectory | undefined;
  /** Where the note about switching to the backup goes (default: stderr). */
  notify?: (text: string) => void;
}

const DEFAULT_TIMEOUT_MS = 30_000;
/** The header in which a primary names its selected backup's base URL. */
export const BACKUP_HEADER = 'x-muster-backup';
/** Primaries this process already said it replaced by their backup (the note comes once). */
const announced = new Set<string>();
/**
 * UNREACHABLE errors that mean the coordinator did not answer (not one it sent itself): only
 * those make the client try the backup.
 */
const noAnswer = new WeakSet<MusterError>();
const eventNames: ReadonlySet<string> = new Set(['build', 'task', 'log', 'agent']);

interface RequestOptions {
  method?: string;
  body?: unknown;
  query?: Record<string, string | number | undefined>;
  /** Raw bytes instead of JSON. */
  raw?: Uint8Array;
  timeoutMs?: number;
  signal?: AbortSignal;
  /** Skip the "log in again" hint on 401 (the login call itself). */
  anonymous?: boolean;
  /** An event stream: the timeout only covers the wait for the response headers. */
  stream?: boolean;
}

export class ApiClient {
  /** The coordinator the client was given (the credentials' URL). */
  readonly configuredUrl: string;
  private readonly token: string | undefined;
  private readonly fingerprint: string | undefined;
  private readonly timeoutMs: number;
  private readonly backups: BackupDirectory | undefined;
  private readonly notify: (text: string) => void;
  /** configuredUrl normalised: the key in the backup directory. */
  private readonly primaryKey: string;
  /** The backup in use since the configured coordinator could not be reached. */
  private switchedTo: string | undefined;
  /** Why: the configured coordinator's error, reported if the backup turns out standing by. */
  private primaryError: MusterError | undefined;
  /** The connections (kept alive between requests; an idle one never keeps the process alive). */
  private readonly transport = new HttpTransport();

  constructor(options: ApiClientOptions) {
    this.configuredUrl = options.url.replace(/\/+$/, '');
    this.token = options.token;
    this.fingerprint = options.fingerprint;
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.backups = options.backups;
    this.notify = options.notify ?? ((text) => void process.stderr.write(text));
    this.primaryKey = normalisedOr(this.configuredUrl);
  }

  /** Where requests go: the configured coordinator, or its backup once switched. */
  get url(): string {
    return this.switchedTo ?? this.configuredUrl;
  }

  /** The backup this client switched to because the configured coordinator was unreachable. */
  get usingBackup(): string | undefined {
    return this.switchedTo;
  }

  /**
   * Closes the kept-alive connections now, those of requests in flight too (they fail). Never
   * needed for the process to exit: idle connections do not keep it alive.
   */
  close(): void {
    this.transport.close();
  }

  // ---- session --------------------------------------------------------------------------------

  login(user: string, password: string): Promise<LoginView> {
    return this.json('POST', '/login', { body: { user, password }, anonymous: true });
  }

  /** `timeoutMs` and `signal`: a probe's (cc/coordinator-probe.ts), short and stoppable. */
  status(options: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<StatusView> {
    return this.json('GET', '/status', options);
  }

  // ---- agents ---------------------------------------------------------------------------------

  listAgents(): Promise<AgentView[]> {
    return this.json('GET', '/agents');
  }

  addAgent(body: AddAgentRequest): Promise<AgentView> {
    return this.json('POST', '/agents', { body });
  }

  async removeAgent(name: string): Promise<void> {
    await this.call('DELETE', `/agents/${encodeURIComponent(name)}`);
  }

  approveAgent(name: string): Promise<AgentView> {
    return this.json('POST', `/agents/${encodeURIComponent(name)}/approve`);
  }

  createJoinToken(body: CreateJoinTokenRequest): Promise<CreatedJoinTokenView> {
    return this.json('POST', '/join-tokens', { body });
  }

  listJoinTokens(): Promise<JoinTokenView[]> {
    return this.json('GET', '/join-tokens');
  }

  async revokeJoinToken(id: string): Promise<void> {
    await this.call('DELETE', `/join-tokens/${encodeURIComponent(id)}`);
  }

  updateAgent(name: string, body: UpdateAgentRequest): Promise<AgentView> {
    return this.json('PATCH', `/agents/${encodeURIComponent(name)}`, { body });
  }

  // ---- backups --------------------------------------------------------------------------------

  listBackups(): Promise<BackupView[]> {
    return this.json('GET', '/backups');
  }

  /** Selects a registered backup, or none with null; returns the list as it is now. */
  selectBackup(name: string | null): Promise<BackupView[]> {
    return this.json('PUT', '/backups/selected', { body: { name } });
  }

  async removeBackup(name: string): Promise<void> {
    await this.call('DELETE', `/backups/${encodeURIComponent(name)}`);
  }

  // ---- extensions -----------------------------------------------------------------------------

  listExtensions(): Promise<ExtensionView[]> {
    return this.json('GET', '/extensions');
  }

  /** The files' blobs must be uploaded first (see missingBlobs and putBlob). */
  addExtension(body: AddExtensionRequest): Promise<ExtensionView> {
    return this.json('POST', '/extensions', { body });
  }

  // ---- blobs ----------------------------------------------------------------------------------

  async missingBlobs(hashes: string[]): Promise<string[]> {
    const result = await this.json<{ missing: string[] }>('POST', '/blobs/missing', {
      body: { hashes },
    });
    return result.missing;
  }

  async putBlob(sha256: string, data: Uint8Array): Promise<void> {
    await this.call('PUT', `/blobs/${sha256}`, {
      raw: data,
      timeoutMs: this.blobTimeoutMs(data.byteLength),
    });
  }

  /**
   * A blob's bytes. With `size` (what the row that named it declares), reading stops as soon
   * as the body is longer, and a body of another length is refused (BLOB_HASH_MISMATCH): a
   * coordinator or a proxy cannot make the client hold more than it expected. The caller checks
   * the hash.
   */
  async getBlob(sha256: string, size?: number): Promise<Buffer> {
    const options = { timeoutMs: this.blobTimeoutMs(size ?? 0) };
    const response = await this.request('GET', `/blobs/${sha256}`, options);
    if (size === undefined)
      return Buffer.from(await this.readBody(() => response.arrayBuffer(), options));
    return this.readBody(() => readExactly(response, size, sha256), options);
  }

  // ---- compile sessions and the shared cache -------------------------------------------------

  createCompileSession(
    body: CreateCompileSessionRequest,
    timeoutMs?: number,
  ): Promise<CompileSessionView> {
    return this.json('POST', '/compile-sessions', {
      body,
      ...(timeoutMs === undefined ? {} : { timeoutMs }),
    });
  }

  /** `session`: the session's key, or its build id (compileSessionPath of the open answer). */
  async recordCompileJobs(session: string, records: CompileRecord[]): Promise<void> {
    await this.call('POST', `/compile-sessions/${encodeURIComponent(session)}/records`, {
      body: { records },
    });
  }

  closeCompileSession(session: string, body: CloseCompileSession): Promise<BuildView> {
    return this.json('POST', `/compile-sessions/${encodeURIComponent(session)}/close`, { body });
  }

  cacheLookup(
    body: { direct?: string; keys?: string[] },
    timeoutMs?: number,
  ): Promise<CacheLookupView> {
    return this.json('POST', '/cache/lookup', {
      body,
      ...(timeoutMs === undefined ? {} : { timeoutMs }),
    });
  }

  /** A page of the shared cache's direct keys after `since` of listing `epoch` (unchecked). */
  cacheDirects(epoch: string | undefined, since: number, timeoutMs?: number): Promise<unknown> {
    return this.json('GET', '/cache/directs', {
      query: { epoch, since },
      ...(timeoutMs === undefined ? {} : { timeoutMs }),
    });
  }

  putCacheEntry(key: string, body: PutCacheEntryRequest): Promise<CacheEntryView> {
    return this.json('PUT', `/cache/entries/${key}`, { body });
  }

  /**
   * Several results at once (POST /cache/results); the answer says which were kept. `bytes`:
   * about the body's size, for the timeout (as a blob upload's: a second more per MiB).
   */
  putCacheResults(body: PutCacheResultsRequest, bytes: number): Promise<unknown> {
    return this.json('POST', '/cache/results', { body, timeoutMs: this.blobTimeoutMs(bytes) });
  }

  async putManifestLine(direct: string, body: PutManifestLineRequest): Promise<void> {
    await this.call('POST', `/cache/manifests/${direct}`, { body });
  }

  putToolchain(id: string, body: PutToolchainRequest): Promise<ToolchainView> {
    return this.json('PUT', `/toolchains/${id}`, { body });
  }

  /** Every registered toolchain, most recently used first (admins). */
  listToolchains(): Promise<ToolchainView[]> {
    return this.json('GET', '/toolchains');
  }

  /** Removes a toolchain (admins); NOT_FOUND when there is none with that id. */
  async removeToolchain(id: string): Promise<void> {
    await this.call('DELETE', `/toolchains/${id}`);
  }

  /** A registered toolchain; NOT_FOUND when the coordinator has none with that id. */
  getToolchain(id: string): Promise<ToolchainView> {
    return this.json('GET', `/toolchains/${id}`);
  }

  /**
   * Runs one compile on an agent of the session's pool and waits for its end (or for its
   * `not-started`): `timeoutMs` must cover the queue wait and the compile.
   */
  submitCompileJob(
    session: string,
    body: CompileJobRequest,
    timeoutMs: number,
  ): Promise<CompileJobView> {
    return this.json('POST', `/compile-sessions/${encodeURIComponent(session)}/jobs`, {
      body,
      timeoutMs,
    });
  }

  // ---- builds ---------------------------------------------------------------------------------

  createBuild(body: CreateBuildRequest): Promise<BuildView> {
    return this.json('POST', '/builds', { body });
  }

  listBuilds(
    query: { status?: BuildStatus; limit?: number; before?: number; q?: string } = {},
  ): Promise<BuildSummary[]> {
    return this.json('GET', '/builds', { query });
  }

  getBuild(id: number): Promise<BuildView> {
    return this.json('GET', `/builds/${id}`);
  }

  cancelBuild(id: number): Promise<BuildView> {
    return this.json('POST', `/builds/${id}/cancel`);
  }

  /** Deletes an ended build with its tasks, attempts and logs (admins). */
  async deleteBuild(id: number): Promise<void> {
    await this.call('DELETE', `/builds/${id}`);
  }

  buildLogs(
    id: number,
    query: { task?: string; after?: number; limit?: number } = {},
  ): Promise<LogsView> {
    return this.json('GET', `/builds/${id}/logs`, { query });
  }

  // ---- settings -------------------------------------------------------------------------------

  listSettings(): Promise<Record<string, unknown>> {
    return this.json('GET', '/settings');
  }

  getSetting(key: string): Promise<{ key: string; value: unknown }> {
    return this.json('GET', `/settings/${encodeURIComponent(key)}`);
  }

  setSetting(key: string, value: unknown): Promise<{ key: string; value: unknown }> {
    return this.json('PUT', `/settings/${encodeURIComponent(key)}`, { body: { value } });
  }

  // ---- audit ----------------------------------------------------------------------------------

  /** The audit log, newest first (admin). */
  listAudit(
    query: { limit?: number; before?: number; action?: string; actor?: string } = {},
  ): Promise<AuditView[]> {
    return this.json('GET', '/audit', { query });
  }

  // ---- secrets --------------------------------------------------------------------------------

  /** Names, who set them and when (admin): the API never returns a value. */
  listSecrets(): Promise<SecretView[]> {
    return this.json('GET', '/secrets');
  }

  setSecret(name: string, value: string): Promise<SecretView> {
    return this.json('PUT', `/secrets/${encodeURIComponent(name)}`, { body: { value } });
  }

  async deleteSecret(name: string): Promise<void> {
    await this.call('DELETE', `/secrets/${encodeURIComponent(name)}`);
  }

  // ---- users ----------------------------------------------------------------------------------

  listUsers(): Promise<UserView[]> {
    return this.json('GET', '/users');
  }

  createUser(name: string, role: UserView['role'], password: string): Promise<UserView> {
    return this.json('POST', '/users', { body: { name, role, password } });
  }

  updateUser(
    name: string,
    change: { role?: UserView['role']; password?: string },
  ): Promise<UserView> {
    return this.json('PATCH', `/users/${encodeURIComponent(name)}`, { body: change });
  }

  async removeUser(name: string): Promise<void> {
    await this.call('DELETE', `/users/${encodeURIComponent(name)}`);
  }

  async changePassword(current: string, password: string): Promise<void> {
    await this.call('PUT', '/session/password', { body: { current, password } });
  }

  // ---- certificate ----------------------------------------------------------------------------

  certificate(): Promise<CertificateView | PlainHttpView> {
    return this.json('GET', '/certificate');
  }

  replaceCertificate(certificate: string, key: string): Promise<CertificateReplacedView> {
    // The primary may wait for its backup to accept the new certificate before it answers.
    return this.json('PUT', '/certificate', { body: { certificate, key }, timeoutMs: 120_000 });
  }

  // ---- events ---------------------------------------------------------------------------------

  /**
   * Subscribes to GET /events[?build=ID] and resolves once the server has answered, so nothing
   * that happens after this returns is missed. Events of unknown types, or whose data is not
   * JSON, are skipped. Reconnecting is the caller's business.
   */
  async openEvents(buildId?: number, signal?: AbortSignal): Promise<EventStream> {
    const controller = new AbortController();
    const onAbort = (): void => controller.abort();
    if (signal?.aborted) controller.abort();
    signal?.addEventListener('abort', onAbort, { once: true });
    let response: HttpResponse;
    try {
      response = await this.request('GET', '/events', {
        query: { build: buildId },
        signal: controller.signal,
        stream: true,
      });
    } catch (err) {
      signal?.removeEventListener('abort', onAbort);
      throw err;
    }
    const body = response.body;
    const close = (): void => {
      signal?.removeEventListener('abort', onAbort);
      controller.abort();
    };
    async function* iterate(): AsyncGenerator<ApiEvent> {
      if (!body) return;
      try {
        for await (const message of readSse(body)) {
          if (!eventNames.has(message.event)) continue;
          let data: unknown;
          try {
            data = JSON.parse(message.data);
          } catch {
            continue;
          }
          yield { event: message.event, data, id: message.id } as ApiEvent;
        }
      } catch (err) {
        // Closing is not an error; a dropped connection is the caller's to handle.
        if (!controller.signal.aborted) throw err;
      } finally {
        close();
      }
    }
    const events = iterate();
    return { [Symbol.asyncIterator]: () => events, close };
  }

  /** The events as an async iterator (see openEvents). */
  async *events(buildId?: number, signal?: AbortSignal): AsyncGenerator<ApiEvent> {
    const stream = await this.openEvents(buildId, signal);
    try {
      yield* stream;
    } finally {
      stream.close();
    }
  }

  // ---- plumbing -------------------------------------------------------------------------------

  private blobTimeoutMs(bytes: number): number {
    // At least the usual timeout, plus a second per MiB (a slow 1 MiB/s link still finishes).
    return this.timeoutMs + Math.ceil(bytes / (1024 * 1024)) * 1000;
  }

  private async json<T>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
    const response = await this.request(method, path, options);
    if (response.status === 204) return undefined as T;
    const text = await this.readBody(() => response.text(), options);
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new MusterError(
        'INTERNAL',
        `${this.url} answered ${method} ${path} with something that is not JSON: is it a Muster coordinator?`,
      );
    }
  }

  /**
   * A request whose answer's body is not needed: read to its end all the same, so that its
   * connection serves the next request.
   */
  private async call(method: string, path: string, options: RequestOptions = {}): Promise<void> {
    const response = await this.request(method, path, options);
    // eslint-disable-next-line no-restricted-syntax -- answered already: a body cut short changes nothing
    await response.arrayBuffer().catch(() => undefined);
  }

  private async readBody<T>(read: () => Promise<T>, options: RequestOptions): Promise<T> {
    try {
      return await read();
    } catch (err) {
      throw this.connectionError(err, options.timeoutMs ?? this.timeoutMs);
    }
  }

  /**
   * One request, to the backup when the configured coordinator cannot be reached and a backup
   * is known for it (see the top of this file).
   */
  private async request(
    method: string,
    path: string,
    options: RequestOptions = {},
  ): Promise<HttpResponse> {
    const backups = this.backups;
    if (backups === undefined) return this.send(this.configuredUrl, method, path, options);
    if (this.switchedTo !== undefined) {
      return this.sendToSwitched(this.switchedTo, method, path, options);
    }
    let response: HttpResponse;
    try {
      response = await this.send(this.configuredUrl, method, path, options);
    } catch (err) {
      if (!(err instanceof MusterError) || !noAnswer.has(err)) throw err;
      // A request at the same time may have switched already: this one goes there too.
      if (this.switchedTo !== undefined) {
        return this.sendToSwitched(this.switchedTo, method, path, options);
      }
      return this.sendToBackup(backups, err, method, path, options);
    }
    await this.learnBackup(backups, response);
    return response;
  }

  /**
   * A request to the backup switched to. A backup standing by answers reads but refuses writes
   * (STANDBY): either it has not taken over yet, or it has handed the cluster back (a failback
   * while this process runs: a `muster build`, the compile service). The configured coordinator
   * is then asked again, and one that answers is used from then on; one that does not is
   * reported as unreachable, as in sendToBackup.
   */
  private async sendToSwitched(
    backup: string,
    method: string,
    path: string,
    options: RequestOptions,
  ): Promise<HttpResponse> {
    try {
      return await this.send(backup, method, path, options);
    } catch (err) {
      if (!(err instanceof MusterError && err.code === 'STANDBY')) throw err;
      const back = await this.sendBack(method, path, options);
      if (back !== undefined) return back;
      if (this.primaryError) throw standingBy(this.primaryError, backup);
      throw err;
    }
  }

  /**
   * The request at the configured coordinator again, its backup standing by: its answer (an
   * error it sends is thrown: it runs the cluster again either way), or undefined when it still
   * does not answer.
   */
  private async sendBack(
    method: string,
    path: string,
    options: RequestOptions,
  ): Promise<HttpResponse | undefined> {
    let response: HttpResponse;
    try {
      response = await this.send(this.configuredUrl, method, path, options);
    } catch (err) {
      if (err instanceof MusterError && noAnswer.has(err)) return undefined;
      this.switchBack();
      throw err;
    }
    this.switchBack();
    if (this.backups !== undefined) await this.learnBackup(this.backups, response);
    return response;
  }

  private switchBack(): void {
    const backup = this.switchedTo;
    if (backup === undefined) return;
    this.switchedTo = undefined;
    this.primaryError = undefined;
    // A later switch (a second failover) is said again.
    announced.delete(this.primaryKey);
    this.notify(`muster: ${backup} stands by again; using ${this.configuredUrl}\n`);
  }

  /** The configured coordinator did not answer (`primaryError`): once more, at its backup. */
  private async sendToBackup(
    backups: BackupDirectory,
    primaryError: MusterError,
    method: string,
    path: string,
    options: RequestOptions,
  ): Promise<HttpResponse> {
    const backup = await backups.get(this.primaryKey).catch(() => undefined);
    if (backup === undefined || backup === this.primaryKey || options.signal?.aborted) {
      throw primaryError;
    }
    try {
      const response = await this.send(backup, method, path, options);
      this.switchTo(backup, primaryError);
      return response;
    } catch (err) {
      if (err instanceof MusterError && err.code === 'STANDBY') {
        throw standingBy(primaryError, backup);
      }
      if (err instanceof MusterError && noAnswer.has(err)) {
        throw new MusterError(
          'UNREACHABLE',
          `${primaryError.message}; nor its backup: ${err.message}`,
          { ...primaryError.details, backup },
          { cause: primaryError },
        );
      }
      // The backup answered, with an error of its own: it is the coordinator to talk to now.
      if (!(err instanceof MusterError && err.code === 'CONNECTION_CLOSED')) {
        this.switchTo(backup, primaryError);
      }
      throw err;
    }
  }

  private switchTo(backup: string, primaryError: MusterError): void {
    if (this.switchedTo !== undefined) return;
    this.switchedTo = backup;
    this.primaryError = primaryError;
    if (announced.has(this.primaryKey)) return;
    announced.add(this.primaryKey);
    this.notify(`muster: ${this.configuredUrl} is unreachable; using its backup ${backup}\n`);
  }

  /** A successful answer of the primary names its selected backup, or says there is none. */
  private async learnBackup(backups: BackupDirectory, response: HttpResponse): Promise<void> {
    const header = response.headers.get(BACKUP_HEADER);
    let backup: string | undefined;
    if (header !== null && header.trim() !== '') {
      try {
        backup = normaliseUrl(header.trim());
      } catch {
        return; // Not a URL: keep what is known.
      }
      // Never from HTTPS to plain HTTP: the token would cross the network readable.
      if (this.primaryKey.startsWith('https:') && !backup.startsWith('https:')) return;
    }
    // eslint-disable-next-line no-restricted-syntax -- a cache only: without it the next command learns the backup again
    await backups.set(this.primaryKey, backup).catch(() => undefined);
  }

  /**
   * One request to `base`. The timeout covers the whole exchange, body included, except for a
   * stream, where it only covers the wait for the response headers.
   */
  private async send(
    base: string,
    method: string,
    path: string,
    options: RequestOptions = {},
  ): Promise<HttpResponse> {
    const url = new URL(`${base}/api/v1${path}`);
    for (const [key, value] of Object.entries(options.query ?? {})) {
      if (value !== undefined) url.searchParams.set(key, String(value));
    }
    const headers: Record<string, string> = {
      accept: options.stream ? 'text/event-stream' : 'application/json',
    };
    if (this.token !== undefined) headers.authorization = `Bearer ${this.token}`;
    let body: string | Uint8Array | undefined;
    if (options.raw !== undefined) {
      headers['content-type'] = 'application/octet-stream';
      body = options.raw;
    } else if (options.body !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(options.body);
    }
    const timeoutMs = options.timeoutMs ?? this.timeoutMs;
    let response: HttpResponse;
    try {
      response = await this.transport.request(url, {
        method,
        headers,
        body,
        signal: options.signal,
        timeoutMs,
        headersOnly: options.stream === true,
        // The pin is the configured coordinator's; a backup is verified the usual way.
        pins:
          this.fingerprint !== undefined && base === this.configuredUrl && url.protocol === 'https:'
            ? [this.fingerprint]
            : undefined,
      });
    } catch (err) {
      throw this.connectionError(err, timeoutMs, base);
    }
    if (!response.ok) throw await this.httpError(response, method, path, options, base);
    return response;
  }

  private connectionError(err: unknown, timeoutMs: number, base = this.url): MusterError {
    if (err instanceof MusterError) return err;
    const name = (err as { name?: string }).name;
    if (name === 'TimeoutError' || err instanceof TimeoutError) {
      return unanswered(
        new MusterError(
          'UNREACHABLE',
          `cannot reach the coordinator at ${base}: no answer in ${formatDuration(timeoutMs)}`,
          undefined,
          { cause: err },
        ),
      );
    }
    if (name === 'AbortError') {
      return new MusterError('CONNECTION_CLOSED', 'the request was cancelled', undefined, {
        cause: err,
      });
    }
    return unanswered(
      new MusterError(
        'UNREACHABLE',
        `cannot reach the coordinator at ${base}: ${describeCause(err)}`,
        undefined,
        { cause: err },
      ),
    );
  }

  private async httpError(
    response: HttpResponse,
    method: string,
    path: string,
    options: RequestOptions,
    base: string,
  ): Promise<MusterError> {
    let body: unknown;
    try {
      body = await response.json();
    } catch {
      body = undefined;
    }
    const error = (body as { error?: { code?: unknown; message?: unknown; details?: unknown } })
      ?.error;
    const serverCode = typeof error?.code === 'string' ? error.code : undefined;
    const code: ErrorCode =
      serverCode !== undefined && isErrorCode(serverCode)
        ? serverCode
        : codeForStatus(response.status);
    // Redirects are not followed (the token goes nowhere else): where it points is said.
    const location =
      response.status >= 300 && response.status < 400 ? response.headers.get('location') : null;
    let message =
      typeof error?.message === 'string'
        ? error.message
        : `${method} ${path} failed with HTTP ${response.status}${location !== null ? ` (redirected to ${location}: is ${base} the coordinator's URL?)` : body === undefined ? ` (is ${base} a Muster coordinator?)` : ''}`;
    if (code === 'UNAUTHORIZED' && !options.anonymous) {
      message += `: log in again with muster login ${this.configuredUrl}`;
    }
    const details =
      error?.details !== null && typeof error?.details === 'object'
        ? { ...(error.details as Record<string, unknown>) }
        : {};
    if (serverCode !== undefined && serverCode !== code) details.serverCode = serverCode;
    details.status = response.status;
    const result = new MusterError(code, message, details);
    // A proxy's 502/503/504 in front of a coordinator that is down: as good as no answer.
    return code === 'UNREACHABLE' && serverCode === undefined ? unanswered(result) : result;
  }
}

/**
 * A client with the credentials from the environment or muster login (see config.ts), which
 * remembers the primary's backup in <config dir>/backups.json and switches to it when needed.
 */
export async function connect(
  env: NodeJS.ProcessEnv = process.env,
  options: Pick<ApiClientOptions, 'notify'> = {},
): Promise<ApiClient> {
  const credentials = await loadCredentials(env);
  return new ApiClient({
    url: credentials.url,
    token: credentials.token,
    fingerprint: credentials.fingerprint,
    backups: new BackupCache(backupsPath(env)),
    ...options,
  });
}

/** The primary did not answer and its backup refused with STANDBY: the primary is unreachable. */
function standingBy(primaryError: MusterError, backup: string): MusterError {
  return new MusterError(
    'UNREACHABLE',
    `${primaryError.message}; its backup ${backup} is standing by and has not taken over (yet): try again shortly, or bring the primary back`,
    { ...primaryError.details, backup, backupCode: 'STANDBY' },
    { cause: primaryError },
  );
}

function unanswered(err: MusterError): MusterError {
  noAnswer.add(err);
  return err;
}

function normalisedOr(url: string): string {
  try {
    return normaliseUrl(url);
  } catch {
    return url;
  }
}

function codeForStatus(status: number): ErrorCode {
  switch (status) {
    case 400:
    case 422:
      return 'VALIDATION_FAILED';
    case 401:
      return 'UNAUTHORIZED';
    case 403:
      return 'FORBIDDEN';
    case 404:
      return 'NOT_FOUND';
    case 409:
      return 'CONFLICT';
    case 413:
      return 'PAYLOAD_TOO_LARGE';
    case 429:
      return 'RATE_LIMITED';
    case 502:
    case 503:
    case 504:
      return 'UNREACHABLE';
    default:
      return 'INTERNAL';
  }
}

const causeWords: Record<string, string> = {
  ECONNREFUSED: 'connection refused (is it running, and on that port?)',
  ECONNRESET: 'the connection was reset',
  ENOTFOUND: 'no such host',
  EAI_AGAIN: 'the host name could not be resolved (DNS)',
  EHOSTUNREACH: 'no route to host',
  ENETUNREACH: 'network unreachable',
  ETIMEDOUT: 'the connection timed out',
  ERR_STREAM_PREMATURE_CLOSE: 'the connection closed unexpectedly',
  EPROTO: 'TLS protocol error (is it http rather than https?)',
  ERR_SSL_WRONG_VERSION_NUMBER: 'TLS error: the server does not speak TLS (try http://)',
};

const certificateCodes = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED',
]);

/**
 * Why a connection failed, in words: Node's error code, or the first one down its `cause` chain
 * (a wrapped reason, e.g. the one a premature close carries).
 */
export function describeCause(err: unknown): string {
  let current: unknown = err;
  for (let depth = 0; depth < 5 && current instanceof Error; depth++) {
    const code = (current as NodeJS.ErrnoException).code;
    if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
      return `its TLS certificate is for another host name (${code}): use the name it was made for`;
    }
    if (code !== undefined && certificateCodes.has(code)) {
      return `its TLS certificate is not trusted (${code}): if it is self-signed, confirm its fingerprint with muster login URL (or point NODE_EXTRA_CA_CERTS at a PEM file with it)`;
    }
    if (code !== undefined && causeWords[code] !== undefined) return causeWords[code];
    if (current.cause === undefined) {
      return code !== undefined ? `${current.message} (${code})` : current.message;
    }
    current = current.cause;
  }
  return String(current);
}

/** The body of a blob answer, which must be exactly `size` bytes; reading stops past it. */
async function readExactly(response: HttpResponse, size: number, sha256: string): Promise<Buffer> {
  const wrongSize = (got: string): MusterError =>
    new MusterError(
      'BLOB_HASH_MISMATCH',
      `the coordinator's blob ${sha256} is not the ${size} bytes expected (${got})`,
      { sha256, size },
    );
  const declared = response.headers.get('content-length');
  if (declared !== null && Number(declared) !== size) {
    await response.body?.cancel();
    throw wrongSize(`it says ${declared}`);
  }
  const data = Buffer.alloc(size);
  let got = 0;
  if (response.body !== null) {
    // Leaving the loop early (the throw) cancels the stream: nothing more is read.
    for await (const chunk of response.body) {
      if (got + chunk.byteLength > size) throw wrongSize('it sent more');
      data.set(chunk, got);
      got += chunk.byteLength;
    }
  }
  if (got !== size) throw wrongSize(`it sent ${got}`);
  return data;
}
