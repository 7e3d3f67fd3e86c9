/**
 * The coordinator side of the agent protocol: connect (TLS with a pinned fingerprint, or a CA),
 * authenticate, sync a bundle, move blobs, run and follow tasks. One AgentClient is one
 * connection; it never reconnects by itself (the coordinator's connection manager does).
 */
import { normaliseFingerprint } from '../fingerprint.js';
import { createReadStream } from 'node:fs';
import { mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { connect as netConnect, type Socket } from 'node:net';
import { dirname } from 'node:path';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { createHash, randomBytes } from 'node:crypto';
import { FramedConnection } from '../connection.js';
import { isErrorCode, MusterError } from '../errors.js';
import {
  DEFAULT_MAX_FRAME_BYTES,
  encodeBinaryFramePrefix,
  encodeJsonFrame,
  type Frame,
} from '../framing.js';
import {
  agentProof,
  channelBinding,
  clientProof,
  newNonce,
  proofsEqual,
  signClaim,
} from '../handshake.js';
import {
  agentMessageSchema,
  blobChunkHeaderSchema,
  challengeSchema,
  PROTOCOL_MAX,
  PROTOCOL_MIN,
  readySchema,
  type AgentMessage,
  type BlobChunkHeader,
  type ClientRequest,
  type ClientWireMessage,
  type TaskInfo,
} from '../messages.js';
import type { OutputStream, TaskResult, TaskSpec } from '../task-types.js';
import type { BlobSource, Bundle } from './bundle.js';

export type AgentTls =
  | { fingerprint: string; servername?: string }
  | { ca: string | Buffer; servername?: string }
  | false;

export interface AgentClientOptions {
  host: string;
  port: number;
  accessKey: string;
  tls: AgentTls;
  product: string;
  productVersion: string;
  instanceId?: string;
  clusterId?: string;
  leaseTerm?: number;
  /** This coordinator among those of its cluster (see hello.holderId). */
  holderId?: string;
  /**
   * The coordinator's instance key (Ed25519 private key, PEM): needed to claim an instanceId or a
   * clusterId, which the agent binds to the first key that claims them.
   */
  instanceKey?: string;
  /** Bind the client socket to this local address (tests use 127.0.0.x as distinct sources). */
  localAddress?: string;
  connectTimeoutMs?: number;
  requestTimeoutMs?: number;
  /** Protocol range to offer; tests offer impossible ones. */
  protocol?: { min: number; max: number };
  maxFrameBytes?: number;
}

export interface OutputChunk {
  seq: number;
  stream: OutputStream;
  data: Buffer;
}

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

interface Pending {
  onMessage(message: AgentMessage): boolean;
  onBlob?(
    header: { sha256: string; offset: number; size: number; last: boolean },
    data: Buffer,
  ): void;
  reject(err: MusterError): void;
  timer?: NodeJS.Timeout;
}

interface Following {
  onOutput?: (chunk: OutputChunk) => void;
  resolve(result: TaskResult): void;
  reject(err: MusterError): void;
}

const CHUNK_BYTES = 1024 * 1024;
const PREFETCH_MAX_BYTES = 16 * 1024 * 1024;

export class AgentClient {
  readonly instance: { key: string; product: string; dir: string };
  readonly agentId: string;
  readonly agentVersion: string;
  readonly protocol: number;
  /** The agent's cores, when it says (agents since 0.1). */
  readonly cores: number | undefined;
  /** With a clusterId: the lease as the handshake left it. */
  readonly lease: LeaseInfo | undefined;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly following = new Map<string, Following>();
  private closeListeners: ((err: MusterError) => void)[] = [];
  private closeError: MusterError | undefined;

  private constructor(
    private readonly conn: FramedConnection<ClientWireMessage>,
    private readonly frames: FrameRouter,
    private readonly options: AgentClientOptions,
    hello: HandshakeResult,
  ) {
    this.cores = hello.cores;
    this.lease = hello.lease;
    this.instance = hello.instance;
    this.agentId = hello.agentId;
    this.agentVersion = hello.agentVersion;
    this.protocol = hello.protocol;
    frames.handler = (frame) => this.onFrame(frame);
    frames.onClose = () => this.handleClose();
    frames.onProtocolError = (err) => {
      this.closeError = new MusterError(
        err.code,
        `the agent sent something that is not a frame: ${err.message}`,
      );
    };
  }

  static async connect(options: AgentClientOptions): Promise<AgentClient> {
    const socket = await openSocket(options);
    const router = new FrameRouter();
    const conn = new FramedConnection<ClientWireMessage>(
      socket,
      {
        onFrame: (frame) => router.handler(frame),
        onProtocolError: (err) => router.onProtocolError(err),
        onClose: () => router.onClose(),
      },
      options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES,
    );
    try {
      const hello = await handshake(conn, router, options);
      return new AgentClient(conn, router, options, hello);
    } catch (err) {
      conn.destroy();
      throw err;
    }
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

  async ping(): Promise<void> {
    await this.request({ t: 'ping' }, (m) => m.t === 'pong');
  }

  /** Makes the agent hold this bundle's version for this instance; sends only missing blobs. */
  async sync(bundle: Bundle): Promise<SyncResult> {
    const { final, sent } = await this.upload(
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
  async putBlobs(
    blobs: { sha256: string; size: number; source: BlobSource }[],
  ): Promise<{ sentBlobs: number; sentBytes: number }> {
    const bySha = new Map(blobs.map((b) => [b.sha256, b]));
    const { sent } = await this.upload(
      {
        t: 'blobs.offer',
        blobs: [...bySha.values()].map((b) => ({ sha256: b.sha256, size: b.size })),
      },
      (sha) => bySha.get(sha),
      'blobs.stored',
    );
    return { sentBlobs: sent.blobs, sentBytes: sent.bytes };
  }

  /**
   * Offers blobs (sync.offer or blobs.offer), sends the ones the agent says it needs, and
   * resolves once the agent confirmed and every chunk was sent.
   */
  private async upload(
    offer: Extract<ClientRequest, { t: 'sync.offer' | 'blobs.offer' }>,
    lookup: (sha256: string) => { sha256: string; size: number; source: BlobSource } | undefined,
    doneType: 'sync.done' | 'blobs.stored',
  ): Promise<{ final: AgentMessage; sent: { blobs: number; bytes: number } }> {
    const id = this.nextId++;
    let sending: Promise<{ blobs: number; bytes: number }> = Promise.resolve({
      blobs: 0,
      bytes: 0,
    });
    let final: AgentMessage | undefined;
    await this.requestWithId(
      id,
      offer,
      (m) => {
        if (m.t === 'sync.need' || m.t === 'blobs.need') {
          sending = this.sendBlobs(id, m.missing.map(lookup));
          sending.catch((err: unknown) => this.pending.get(id)?.reject(asMusterError(err)));
          return false;
        }
        if (m.t !== doneType) return false;
        final = m;
        return true;
      },
      0,
    );
    return { final: final!, sent: await sending };
  }

  /** Downloads a blob into `file` (verified by hash, written atomically) or into memory. */
  async getBlob(sha256: string, file?: string): Promise<Buffer | undefined> {
    const id = this.nextId++;
    const hash = createHash('sha256');
    const parts: Buffer[] = [];
    const temp = file === undefined ? undefined : `${file}.${randomBytes(6).toString('hex')}.part`;
    if (file !== undefined) await mkdir(dirname(file), { recursive: true });
    const handle = temp === undefined ? undefined : await open(temp, 'w');
    let writes = Promise.resolve();
    let finished = false;
    try {
      await new Promise<void>((resolve, reject) => {
        const pending: Pending = {
          onMessage: () => false,
          onBlob: (header, data) => {
            hash.update(data);
            if (handle) {
              const chunk = data;
              writes = writes.then(async () => {
                await handle.write(chunk);
              });
            } else parts.push(data);
            if (header.last) {
              finished = true;
              this.pending.delete(id);
              resolve();
            }
          },
          reject,
        };
        this.pending.set(id, pending);
        this.conn.sendJson({ t: 'blob.get', id, sha256 });
      });
      await writes;
      const actual = hash.digest('hex');
      if (actual !== sha256) {
        throw new MusterError('BLOB_HASH_MISMATCH', `blob ${sha256} arrived as ${actual}`, {
          sha256,
          actual,
        });
      }
      await handle?.close();
      if (temp !== undefined && file !== undefined) await rename(temp, file);
      return file === undefined ? Buffer.concat(parts) : undefined;
    } catch (err) {
      // eslint-disable-next-line no-restricted-syntax -- the error being thrown is the one to report
      await handle?.close().catch(() => undefined);
      if (temp !== undefined) await rm(temp, { force: true });
      throw err;
    } finally {
      if (!finished) this.pending.delete(id);
    }
  }

  /** Starts a task; output goes to onOutput as it comes; `result` resolves when it ends. */
  async startTask(spec: TaskSpec, onOutput?: (chunk: OutputChunk) => void): Promise<RemoteTask> {
    const result = this.follow(spec.taskId, onOutput);
    try {
      await this.request({ t: 'task.start', ...spec }, (m) => m.t === 'task.accepted');
    } catch (err) {
      this.following.delete(spec.taskId);
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
    const result = this.follow(taskId, onOutput);
    try {
      await this.request({ t: 'task.attach', taskId, fromSeq }, (m) => m.t === 'task.accepted');
    } catch (err) {
      this.following.delete(taskId);
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

  /**
   * Sends a raw message (tests use it to send what a well-behaved client would not): written as
   * a frame on the socket, past the connection's typed send.
   */
  sendRaw(message: object): void {
    this.conn.socket.write(encodeJsonFrame(message));
  }

  sendRawBinary(header: object, data: Buffer): void {
    this.conn.socket.write(encodeBinaryFramePrefix(header, data.length));
    this.conn.socket.write(data);
  }

  /** The next request id; with sendRaw, lets a test wait for the answer with `awaitAnswer`. */
  takeId(): number {
    return this.nextId++;
  }

  awaitAnswer(id: number): Promise<AgentMessage> {
    return new Promise((resolve, reject) => {
      this.pending.set(id, {
        onMessage: (m) => {
          resolve(m);
          return true;
        },
        reject,
      });
    });
  }

  private follow(taskId: string, onOutput?: (chunk: OutputChunk) => void): Promise<TaskResult> {
    const result = new Promise<TaskResult>((resolve, reject) => {
      this.following.set(taskId, { ...(onOutput ? { onOutput } : {}), resolve, reject });
    });
    // Closing a connection rejects the results it followed; a caller that walked away from a
    // task (it will re-attach later) must not get an unhandled rejection for that.
    // eslint-disable-next-line no-restricted-syntax -- see above; a caller that awaits gets it
    result.catch(() => undefined);
    return result;
  }

  private request(message: ClientRequest, isFinal: (m: AgentMessage) => boolean): Promise<void> {
    return this.requestWithId(
      this.nextId++,
      message,
      isFinal,
      this.options.requestTimeoutMs ?? 60_000,
    );
  }

  private requestWithId(
    id: number,
    message: ClientRequest,
    isFinal: (m: AgentMessage) => boolean,
    timeoutMs: number,
  ): Promise<void> {
    if (this.closeError) return Promise.reject(this.closeError);
    return new Promise<void>((resolve, reject) => {
      const pending: Pending = {
        onMessage: (m) => {
          if (!isFinal(m)) return false;
          if (pending.timer) clearTimeout(pending.timer);
          resolve();
          return true;
        },
        reject: (err) => {
          if (pending.timer) clearTimeout(pending.timer);
          this.pending.delete(id);
          reject(err);
        },
      };
      if (timeoutMs > 0) {
        pending.timer = setTimeout(
          () =>
            pending.reject(
              new MusterError('REQUEST_TIMEOUT', `the agent did not answer in ${timeoutMs} ms`),
            ),
          timeoutMs,
        );
      }
      this.pending.set(id, pending);
      this.conn.sendJson({ ...message, id });
    });
  }

  /**
   * Streams blobs as 1 MiB chunks. Small files (up to 16 MiB) are read whole, the next one while
   * the current one is being sent, so disk reads overlap the network instead of alternating.
   */
  private async sendBlobs(
    id: number,
    blobs: ({ sha256: string; size: number; source: BlobSource } | undefined)[],
  ): Promise<{ blobs: number; bytes: number }> {
    const load = (blob: (typeof blobs)[number]): Promise<Buffer | undefined> | undefined => {
      if (blob === undefined) return undefined;
      if ('data' in blob.source) return Promise.resolve(blob.source.data);
      if (blob.size > PREFETCH_MAX_BYTES) return Promise.resolve(undefined);
      const read = readFile(blob.source.file);
      // eslint-disable-next-line no-restricted-syntax -- awaited below; a failure then is the caller's error
      read.catch(() => undefined);
      return read;
    };
    let bytes = 0;
    let next = load(blobs[0]);
    for (const [i, blob] of blobs.entries()) {
      if (blob === undefined) {
        throw new MusterError(
          'BLOB_NOT_FOUND',
          'the agent asked for a blob this client did not offer',
        );
      }
      const current = next;
      next = load(blobs[i + 1]);
      if (!this.pending.has(id)) return { blobs: 0, bytes };
      const send = async (offset: number, data: Buffer, last: boolean): Promise<void> => {
        const header: BlobChunkHeader = {
          t: 'blob.chunk',
          re: id,
          sha256: blob.sha256,
          offset,
          size: blob.size,
          last,
        };
        if (!this.conn.sendBinary(header, data)) await this.conn.drained();
      };
      const whole = await current;
      if (blob.size === 0) await send(0, Buffer.alloc(0), true);
      if (whole !== undefined) {
        for (let offset = 0; offset < whole.length; offset += CHUNK_BYTES) {
          const chunk = whole.subarray(offset, offset + CHUNK_BYTES);
          await send(offset, chunk, offset + chunk.length >= whole.length);
        }
      } else if ('file' in blob.source) {
        let offset = 0;
        for await (const chunk of createReadStream(blob.source.file, {
          highWaterMark: CHUNK_BYTES,
        })) {
          const data = chunk as Buffer;
          await send(offset, data, offset + data.length >= blob.size);
          offset += data.length;
        }
      }
      bytes += blob.size;
      if (this.conn.isClosed) throw this.closeError ?? new MusterError('CONNECTION_CLOSED');
    }
    return { blobs: blobs.length, bytes };
  }

  private onFrame(frame: Frame): void {
    if (frame.kind === 'binary') {
      const header = blobChunkHeaderSchema.safeParse(frame.header);
      if (!header.success) return;
      this.pending.get(header.data.re)?.onBlob?.(header.data, frame.data);
      return;
    }
    const parsed = agentMessageSchema.safeParse(frame.value);
    if (!parsed.success) {
      // A newer agent's message this client does not know; if it answers a request, say so.
      const re = (frame.value as { re?: unknown } | null)?.re;
      if (typeof re === 'number') {
        this.pending
          .get(re)
          ?.reject(
            new MusterError('INVALID_MESSAGE', 'the agent sent an answer this client cannot read'),
          );
      }
      return;
    }
    const message = parsed.data;
    switch (message.t) {
      case 'task.output': {
        this.following.get(message.taskId)?.onOutput?.({
          seq: message.seq,
          stream: message.stream,
          data: Buffer.from(message.data, 'base64'),
        });
        return;
      }
      case 'task.done': {
        const following = this.following.get(message.taskId);
        this.following.delete(message.taskId);
        following?.resolve(message.result);
        return;
      }
      case 'error': {
        const err = new MusterError(
          isErrorCode(message.code) ? message.code : 'INTERNAL',
          message.message,
          message.details,
        );
        if (message.re !== undefined) this.pending.get(message.re)?.reject(err);
        else this.closeError = err;
        return;
      }
      default: {
        if (!('re' in message)) return;
        const pending = this.pending.get(message.re);
        if (pending?.onMessage(message)) this.pending.delete(message.re);
      }
    }
  }

  private handleClose(): void {
    const err =
      this.closeError ?? new MusterError('CONNECTION_CLOSED', 'the connection to the agent closed');
    this.closeError = err;
    for (const pending of [...this.pending.values()]) pending.reject(err);
    this.pending.clear();
    for (const following of this.following.values()) following.reject(err);
    this.following.clear();
    for (const listener of this.closeListeners) listener(err);
  }
}

interface HandshakeResult {
  instance: { key: string; product: string; dir: string };
  agentId: string;
  agentVersion: string;
  protocol: number;
  cores: number | undefined;
  lease: LeaseInfo | undefined;
}

export interface LeaseInfo {
  held: boolean;
  term: number;
  expiresInMs: number;
}

/** Lets the handshake and then the client take turns at handling frames. */
class FrameRouter {
  handler: (frame: Frame) => void = () => undefined;
  /** The agent sent bytes that are not a frame; the connection is being closed because of it. */
  onProtocolError: (err: MusterError) => void = () => undefined;
  onClose: () => void = () => undefined;
}

async function openSocket(options: AgentClientOptions): Promise<Socket | TLSSocket> {
  const timeoutMs = options.connectTimeoutMs ?? 10_000;
  return new Promise((resolve, reject) => {
    const common = {
      host: options.host,
      port: options.port,
      ...(options.localAddress ? { localAddress: options.localAddress } : {}),
    };
    let socket: Socket | TLSSocket;
    const fail = (err: MusterError): void => {
      clearTimeout(timer);
      socket.destroy();
      reject(err);
    };
    const timer = setTimeout(
      () =>
        fail(
          new MusterError(
            'CONNECTION_CLOSED',
            `connecting to ${options.host}:${options.port} timed out`,
          ),
        ),
      timeoutMs,
    );
    const tls = options.tls;
    if (tls === false) {
      socket = netConnect(common, () => {
        clearTimeout(timer);
        socket.setNoDelay(true);
        resolve(socket);
      });
    } else {
      const pinned = 'fingerprint' in tls ? normaliseFingerprint(tls.fingerprint) : undefined;
      socket = tlsConnect(
        {
          ...common,
          servername: tls.servername ?? (isIp(options.host) ? undefined : options.host),
          minVersion: 'TLSv1.2',
          ...('ca' in tls ? { ca: tls.ca } : { rejectUnauthorized: false }),
        },
        () => {
          const tlsSocket = socket as TLSSocket;
          if (pinned !== undefined) {
            const actual = tlsSocket.getPeerX509Certificate()?.fingerprint256;
            if (actual === undefined || normaliseFingerprint(actual) !== pinned) {
              fail(
                new MusterError(
                  'TLS_FINGERPRINT_MISMATCH',
                  `the agent's certificate fingerprint is ${actual ?? 'missing'}, expected ${tls && 'fingerprint' in tls ? tls.fingerprint : ''}`,
                  { actual, expected: pinned },
                ),
              );
              return;
            }
          }
          clearTimeout(timer);
          tlsSocket.setNoDelay(true);
          resolve(tlsSocket);
        },
      );
    }
    socket.once('error', (err: NodeJS.ErrnoException) =>
      fail(
        new MusterError(
          'CONNECTION_CLOSED',
          `cannot connect to ${options.host}:${options.port}: ${err.message}`,
          { errno: err.code },
        ),
      ),
    );
  });
}

async function handshake(
  conn: FramedConnection<ClientWireMessage>,
  router: FrameRouter,
  options: AgentClientOptions,
): Promise<HandshakeResult> {
  const clientNonce = newNonce();
  const binding = channelBinding(conn.socket);
  const timeoutMs = options.connectTimeoutMs ?? 10_000;
  return new Promise((resolve, reject) => {
    let step: 'challenge' | 'ready' = 'challenge';
    let challenge:
      { protocol: number; agentId: string; agentVersion: string; nonce: string } | undefined;
    const timer = setTimeout(
      () => fail(new MusterError('HANDSHAKE_TIMEOUT', 'the agent did not complete the handshake')),
      timeoutMs,
    );
    const fail = (err: MusterError): void => {
      clearTimeout(timer);
      router.handler = () => undefined;
      reject(err);
    };
    let framingError: MusterError | undefined;
    router.onProtocolError = (err) => {
      framingError = new MusterError(
        err.code,
        `the agent sent something that is not a Muster frame (is it a Muster agent, with the same TLS setting?): ${err.message}`,
      );
    };
    router.onClose = () =>
      fail(
        framingError ??
          new MusterError(
            'CONNECTION_CLOSED',
            'the agent closed the connection during the handshake',
          ),
      );
    router.handler = (frame) => {
      if (frame.kind !== 'json')
        return fail(new MusterError('UNEXPECTED_MESSAGE', 'binary frame during the handshake'));
      const value = frame.value as {
        t?: unknown;
        code?: unknown;
        message?: unknown;
        details?: unknown;
      };
      if (value?.t === 'error') {
        const code =
          typeof value.code === 'string' && isErrorCode(value.code) ? value.code : 'INTERNAL';
        return fail(
          new MusterError(
            code,
            String(value.message),
            value.details as Record<string, unknown> | undefined,
          ),
        );
      }
      if (step === 'challenge') {
        const parsed = challengeSchema.safeParse(value);
        if (!parsed.success)
          return fail(new MusterError('UNEXPECTED_MESSAGE', 'expected "challenge"'));
        const c = parsed.data;
        challenge = c;
        step = 'ready';
        const claims = options.instanceId !== undefined || options.clusterId !== undefined;
        if (claims && options.instanceKey === undefined)
          return fail(
            new MusterError('INSTANCE_CLAIM_INVALID', 'an instance id needs the instance key'),
          );
        conn.sendJson({
          t: 'auth',
          proof: clientProof(options.accessKey, clientNonce, c.nonce, binding),
          ...(claims && options.instanceKey !== undefined
            ? {
                claim: signClaim(options.instanceKey, {
                  product: options.product,
                  instanceId: options.instanceId,
                  clusterId: options.clusterId,
                  clientNonce,
                  agentNonce: c.nonce,
                  binding,
                }),
              }
            : {}),
        });
        return;
      }
      const parsed = readySchema.safeParse(value);
      if (!parsed.success) return fail(new MusterError('UNEXPECTED_MESSAGE', 'expected "ready"'));
      const agentNonce = challenge!.nonce;
      const proof = parsed.data.proof;
      if (
        proof === undefined ||
        !proofsEqual(proof, agentProof(options.accessKey, clientNonce, agentNonce, binding))
      ) {
        conn.close();
        return fail(
          new MusterError(
            'AUTH_FAILED',
            'the agent could not prove it knows the access key (wrong key, or not the agent you meant)',
          ),
        );
      }
      clearTimeout(timer);
      resolve({
        instance: parsed.data.instance,
        agentId: challenge!.agentId,
        agentVersion: challenge!.agentVersion,
        protocol: challenge!.protocol,
        cores: parsed.data.capacity?.cores,
        lease: parsed.data.lease,
      });
    };
    conn.sendJson({
      t: 'hello',
      protocol: options.protocol ?? { min: PROTOCOL_MIN, max: PROTOCOL_MAX },
      product: options.product,
      productVersion: options.productVersion,
      ...(options.instanceId === undefined ? {} : { instanceId: options.instanceId }),
      ...(options.clusterId === undefined ? {} : { clusterId: options.clusterId }),
      ...(options.holderId === undefined ? {} : { holderId: options.holderId }),
      ...(options.leaseTerm === undefined ? {} : { leaseTerm: options.leaseTerm }),
      nonce: clientNonce,
    });
  });
}

function asMusterError(err: unknown): MusterError {
  return err instanceof MusterError ? err : new MusterError('INTERNAL', String(err));
}

function isIp(host: string): boolean {
  return /^[\d.]+$/.test(host) || host.includes(':');
}
