/**
 * The coordinator side of the agent protocol: connect (TLS with a pinned fingerprint, or a CA),
 * authenticate, sync a bundle, move blobs, run and follow tasks. One AgentClient is one
 * connection; it never reconnects by itself (the coordinator's connection manager does).
 *
 * This is the facade; the parts are dial.ts (TLS with pinning), client-handshake.ts,
 * request-table.ts (ids, answers, timeouts), task-followers.ts, blob-upload.ts and
 * blob-download.ts.
 */
import type { FramedConnection } from '../connection.js';
import { isErrorCode, MusterError } from '../errors.js';
import type { Frame } from '../framing.js';
import {
  agentMessageSchema,
  blobChunkHeaderSchema,
  type ClientRequest,
  type ClientWireMessage,
  type AgentMessage,
  type TaskInfo,
} from '../messages.js';
import type { TaskResult, TaskSpec } from '../task-types.js';
import type { AgentClientOptions } from './agent-client-options.js';
import { openAgentLink, type AgentLink } from './agent-link.js';
import { downloadBlob } from './blob-download.js';
import { offerAndUpload, type UploadBlob } from './blob-upload.js';
import type { BlobTransferContext } from './blob-transfer-context.js';
import type { Bundle } from './bundle.js';
import type { LeaseInfo } from './client-handshake.js';
import { RequestTable } from './request-table.js';
import { TaskFollowers, type OutputChunk } from './task-followers.js';

export type { AgentClientOptions, AgentTls } from './agent-client-options.js';
export type { LeaseInfo } from './client-handshake.js';
export type { OutputChunk } from './task-followers.js';

export interface RemoteTask {
  taskId: string;
  /** Resolves with the result when the task ends (also after a re-attach). */
  result: Promise<TaskResult>;
}

export interface SyncResult {
  versionId: string;
  sentBlobs: number;
  sentBytes: number;
}

export class AgentClient {
  readonly instance: { key: string; product: string; dir: string };
  readonly agentId: string;
  readonly agentVersion: string;
  readonly protocol: number;
  /** The agent's cores, when it says (agents since 0.1). */
  readonly cores: number | undefined;
  /** The agent's machine (hashed kernel boot id), when it says (agents since issue 13). */
  readonly bootId: string | undefined;
  /** With a clusterId: the lease as the handshake left it. */
  readonly lease: LeaseInfo | undefined;
  /** Protected, not private: a test seam (test/helpers/raw-agent-client.ts) extends this class. */
  protected readonly conn: FramedConnection<ClientWireMessage>;
  protected readonly requests: RequestTable;
  private readonly following = new TaskFollowers();
  private closeListeners: ((err: MusterError) => void)[] = [];
  private closeError: MusterError | undefined;

  protected constructor(
    link: AgentLink,
    private readonly options: AgentClientOptions,
  ) {
    const { conn, router, hello } = link;
    this.conn = conn;
    this.requests = new RequestTable(conn, () => this.closeError);
    this.cores = hello.cores;
    this.bootId = hello.bootId;
    this.lease = hello.lease;
    this.instance = hello.instance;
    this.agentId = hello.agentId;
    this.agentVersion = hello.agentVersion;
    this.protocol = hello.protocol;
    router.handler = (frame) => this.onFrame(frame);
    router.onClose = () => this.handleClose();
    router.onProtocolError = (err) => {
      this.closeError = new MusterError(
        err.code,
        `the agent sent something that is not a frame: ${err.message}`,
      );
    };
  }

  static async connect(options: AgentClientOptions): Promise<AgentClient> {
    return new AgentClient(await openAgentLink(options), options);
  }

  /** A client on a link opened another way (an agent that dialed out: openAgentLinkOver). */
  static over(link: AgentLink, options: AgentClientOptions): AgentClient {
    return new AgentClient(link, options);
  }

  get closed(): boolean {
    return this.conn.isClosed;
  }

  onClose(listener: (err: MusterError) => void): void {
    this.closeListeners.push(listener);
  }

  close(): void {
    this.conn.close();
  }

  /** Grows while the agent reads what is sent or sends anything (FramedConnection.progress). */
  get progress(): number {
    return this.conn.progress;
  }

  async ping(): Promise<void> {
    await this.request({ t: 'ping' }, (m) => m.t === 'pong');
  }

  /** Makes the agent hold this bundle's version for this instance; sends only missing blobs. */
  async sync(bundle: Bundle): Promise<SyncResult> {
    const { final, sent } = await offerAndUpload(
      this.transfers,
      { t: 'sync.offer', manifest: bundle.manifest },
      (sha) => bundle.blobs.get(sha),
      'sync.done',
    );
    return {
      versionId: final.t === 'sync.done' ? final.versionId : bundle.versionId,
      sentBlobs: sent.blobs,
      sentBytes: sent.bytes,
    };
  }

  /** Makes sure the agent has these blobs (task inputs); sends only the missing ones. */
  async putBlobs(blobs: UploadBlob[]): Promise<{ sentBlobs: number; sentBytes: number }> {
    const bySha = new Map(blobs.map((b) => [b.sha256, b]));
    const { sent } = await offerAndUpload(
      this.transfers,
      {
        t: 'blobs.offer',
        blobs: [...bySha.values()].map((b) => ({ sha256: b.sha256, size: b.size })),
      },
      (sha) => bySha.get(sha),
      'blobs.stored',
    );
    return { sentBlobs: sent.blobs, sentBytes: sent.bytes };
  }

  /** Downloads a blob into `file` (verified by hash, written atomically) or into memory. */
  getBlob(sha256: string, file?: string): Promise<Buffer | undefined> {
    return downloadBlob(this.transfers, sha256, file);
  }

  /** Starts a task; output goes to onOutput as it comes; `result` resolves when it ends. */
  async startTask(spec: TaskSpec, onOutput?: (chunk: OutputChunk) => void): Promise<RemoteTask> {
    const result = this.following.follow(spec.taskId, onOutput);
    try {
      await this.request({ t: 'task.start', ...spec }, (m) => m.t === 'task.accepted');
    } catch (err) {
      this.following.unfollow(spec.taskId);
      throw err;
    }
    return { taskId: spec.taskId, result };
  }

  /** Starts a task and waits for its result. */
  async runTask(spec: TaskSpec, onOutput?: (chunk: OutputChunk) => void): Promise<TaskResult> {
    return (await this.startTask(spec, onOutput)).result;
  }

  /** Follows a task started earlier (maybe by a previous connection of this instance). */
  async attachTask(
    taskId: string,
    fromSeq = 0,
    onOutput?: (chunk: OutputChunk) => void,
  ): Promise<RemoteTask> {
    const result = this.following.follow(taskId, onOutput);
    try {
      await this.request({ t: 'task.attach', taskId, fromSeq }, (m) => m.t === 'task.accepted');
    } catch (err) {
      this.following.unfollow(taskId);
      throw err;
    }
    return { taskId, result };
  }

  async cancelTask(taskId: string): Promise<void> {
    await this.request({ t: 'task.cancel', taskId }, (m) => m.t === 'ack');
  }

  async releaseTask(taskId: string): Promise<void> {
    await this.request({ t: 'task.release', taskId }, (m) => m.t === 'ack');
  }

  /** Takes (or keeps) the cluster's lease with `term`; needs a clusterId. Pings renew it. */
  async acquireLease(term: number): Promise<LeaseInfo> {
    let lease: LeaseInfo = { held: false, term: 0, expiresInMs: 0 };
    await this.request({ t: 'lease.acquire', term }, (m) => {
      if (m.t !== 'lease') return false;
      lease = { held: m.held, term: m.term, expiresInMs: m.expiresInMs };
      return true;
    });
    return lease;
  }

  async releaseLease(): Promise<void> {
    await this.request({ t: 'lease.release' }, (m) => m.t === 'ack');
  }

  async listTasks(): Promise<TaskInfo[]> {
    let tasks: TaskInfo[] = [];
    await this.request({ t: 'tasks.list' }, (m) => {
      if (m.t !== 'tasks') return false;
      tasks = m.tasks;
      return true;
    });
    return tasks;
  }

  private get transfers(): BlobTransferContext {
    return { conn: this.conn, requests: this.requests, closedWith: () => this.closeError };
  }

  private request(message: ClientRequest, isFinal: (m: AgentMessage) => boolean): Promise<void> {
    return this.requests.send(
      this.requests.takeId(),
      message,
      isFinal,
      this.options.requestTimeoutMs ?? 60_000,
    );
  }

  private onFrame(frame: Frame): void {
    if (frame.kind === 'binary') {
      const header = blobChunkHeaderSchema.safeParse(frame.header);
      if (!header.success) return;
      this.requests.chunk(header.data, frame.data);
      return;
    }
    const parsed = agentMessageSchema.safeParse(frame.value);
    if (!parsed.success) {
      // A newer agent's message this client does not know; if it answers a request, say so.
      const re = (frame.value as { re?: unknown } | null)?.re;
      if (typeof re === 'number') {
        this.requests.fail(
          re,
          new MusterError('INVALID_MESSAGE', 'the agent sent an answer this client cannot read'),
        );
      }
      return;
    }
    const message = parsed.data;
    switch (message.t) {
      case 'task.output': {
        this.following.output(message.taskId, {
          seq: message.seq,
          stream: message.stream,
          data: Buffer.from(message.data, 'base64'),
        });
        return;
      }
      case 'task.done': {
        this.following.done(message.taskId, message.result);
        return;
      }
      case 'error': {
        const err = new MusterError(
          isErrorCode(message.code) ? message.code : 'INTERNAL',
          message.message,
          message.details,
        );
        if (message.re !== undefined) this.requests.fail(message.re, err);
        else this.closeError = err;
        return;
      }
      default: {
        if (!('re' in message)) return;
        this.requests.answer(message.re, message);
      }
    }
  }

  private handleClose(): void {
    const err =
      this.closeError ?? new MusterError('CONNECTION_CLOSED', 'the connection to the agent closed');
    this.closeError = err;
    this.requests.failAll(err);
    this.following.failAll(err);
    for (const listener of this.closeListeners) listener(err);
  }
}
