/**
 * One coordinator connection on the agent: the handshake (hello -> challenge -> auth -> ready),
 * then requests for that connection's instance. Any bad input is answered with an error frame
 * carrying a code; only framing errors and handshake failures close the connection, and nothing
 * a peer sends can affect another instance.
 *
 * The session keeps the connection's state and dispatches; its parts are handshake-checks.ts
 * (what a hello and an auth may be), bundle-sync.ts (sync.offer), blob-requests.ts
 * (blobs.offer, blob.get), upload-receiver.ts (the chunks of an upload), followed-tasks.ts
 * (task output to the peer) and wire-errors.ts (error frames about bad input).
 */
import type { LogLimiters } from './log-limiter.js';
import { availableParallelism } from 'node:os';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { FramedConnection } from '../protocol/connection.js';
import { MusterError, toMusterError } from '../protocol/errors.js';
import type { Frame } from '../protocol/framing.js';
import {
  agentProof,
  channelBinding,
  instanceKeyFingerprint,
  newNonce,
  rekey,
} from '../protocol/handshake.js';
import {
  clientMessageSchema,
  clientMessageTypes,
  type ClientMessage,
  type AgentWireMessage,
  type Hello,
} from '../protocol/messages.js';
import type { LeaseTable } from './leases.js';
import type { Pins } from './pins.js';
import type { BlobStore } from '../common/blob-store.js';
import type { AgentIdentity } from './identity.js';
import { InstanceBoundError, type Instance, type InstanceRegistry } from './instances.js';
import type { CompiledAgentOptions } from './options.js';
import type { TaskService } from './tasks.js';
import { MUSTER_VERSION } from '../common/version.js';
import type { VersionStore } from './version-store.js';
import { offerBlobs, serveBlob } from './blob-requests.js';
import { BundleSync } from './bundle-sync.js';
import { FollowedTasks } from './followed-tasks.js';
import { checkAuth, checkHello, type AuthCheck } from './handshake-checks.js';
import { UploadReceiver } from './upload-receiver.js';
import { boundedWire, describeType, invalid, requestIdOf } from './wire-errors.js';

/** What a session needs from the agent; narrow, so tests can provide fakes. */
export interface SessionContext {
  options: CompiledAgentOptions;
  identity: AgentIdentity;
  log: Logger;
  blobs: BlobStore;
  versions: VersionStore;
  instances: InstanceRegistry;
  tasks: TaskService;
  pins: Pins;
  versionPins: Pins;
  leases: LeaseTable;
  isDraining(): boolean;
  /** The peer has authenticated: it no longer counts against the unauthenticated caps. */
  onAuthenticated(session: AgentSession): void;
  /** Warnings about peers that have not authenticated, limited per kind (see LogLimiters). */
  strangers: LogLimiters;
  onSessionClosed(session: AgentSession): void;
  /**
   * A connection this agent opened (outbound.ts): the key it shares with that coordinator, not
   * the agent's --access-key, and the TLS session under the WebSocket that the proofs bind.
   */
  outbound?: {
    /** The keys the coordinator may prove (see AuthCheckContext.accessKeys). */
    accessKeys: readonly string[];
    binding: string;
    /**
     * It proved `accessKey`; `rekeyed` is the key this handshake makes of it (see rekey). False:
     * the agent already has a link to this coordinator (`holderId`) under another URL, and this
     * connection is closed (DUPLICATE_LINK).
     */
    authenticated(accessKey: string, rekeyed: string, holderId: string | undefined): boolean;
  };
}

type SessionState = 'hello' | 'auth' | 'ready' | 'closed';

export class AgentSession {
  private state: SessionState = 'hello';
  private readonly conn: FramedConnection<AgentWireMessage>;
  private readonly log: Logger;
  private readonly sourceIp: string;
  private hello: Hello | undefined;
  private agentNonce = '';
  private instance: Instance | undefined;
  private readonly uploads: UploadReceiver;
  private readonly sync: BundleSync;
  private readonly following: FollowedTasks;
  private leaseTerm = 0;
  /** The instance public key this connection proved (with a claim). */
  private claimKey: string | undefined;
  private readonly handshakeTimer: NodeJS.Timeout;

  constructor(
    socket: Duplex & { remoteAddress?: string; remotePort?: number },
    private readonly ctx: SessionContext,
  ) {
    this.sourceIp = normaliseIp(socket.remoteAddress ?? 'unknown');
    this.log = ctx.log.child({ peer: `${this.sourceIp}:${socket.remotePort ?? 0}` });
    this.conn = new FramedConnection<AgentWireMessage>(
      socket,
      {
        onFrame: (frame) => this.onFrame(frame),
        onProtocolError: (err) =>
          this.state === 'ready'
            ? this.log.warn({ code: err.code }, err.message)
            : this.ctx.strangers.warn(err.code, `handshake refused (${err.code})`, {
                peer: this.sourceIp,
                error: err.message.slice(0, 300),
              }),
        onClose: () => this.onClose(),
      },
      // Until authentication only small frames; raised to maxFrameBytes in onAuth.
      ctx.options.preAuthMaxFrameBytes,
    );
    this.uploads = new UploadReceiver(ctx.blobs, socket, this.log, (re, err) =>
      this.sendError(re, err),
    );
    this.sync = new BundleSync(ctx, this.conn, this.uploads);
    this.following = new FollowedTasks(this.conn);
    this.handshakeTimer = setTimeout(() => {
      if (this.state === 'hello' || this.state === 'auth') {
        this.fail(new MusterError('HANDSHAKE_TIMEOUT', 'the handshake did not complete in time'));
      }
    }, ctx.options.handshakeTimeoutMs);
    this.handshakeTimer.unref();
  }

  get instanceKey(): string | undefined {
    return this.instance?.key;
  }

  get clusterId(): string | undefined {
    return this.hello?.clusterId;
  }

  /** Who holds a lease through this connection: its instance, and which coordinator of it. */
  private get holder(): string {
    const key = this.instance?.key ?? '';
    const id = this.hello?.holderId;
    return id === undefined ? key : `${key}#${id}`;
  }

  /** Closes the connection, telling the peer why. */
  close(err?: MusterError): void {
    this.conn.close(err);
  }

  private onFrame(frame: Frame): void {
    if (frame.kind === 'binary') {
      if (this.state !== 'ready') {
        this.fail(
          new MusterError('UNEXPECTED_MESSAGE', 'binary frame before the handshake completed'),
        );
        return;
      }
      this.uploads.onChunk(frame.header, frame.data);
      return;
    }
    const message = frame.value as { t?: unknown; id?: unknown } | null;
    switch (this.state) {
      case 'hello':
        this.onHello(message);
        return;
      case 'auth':
        this.onAuth(message);
        return;
      case 'ready':
        this.onRequest(message);
        return;
      case 'closed':
        return;
    }
  }

  // ---- handshake ----------------------------------------------------------------------------

  private onHello(message: unknown): void {
    const check = checkHello(message);
    if ('refused' in check) {
      this.fail(check.refused);
      return;
    }
    const { hello, protocol } = check;
    this.hello = hello;
    this.leaseTerm = hello.leaseTerm ?? 0;
    this.agentNonce = newNonce();
    this.state = 'auth';
    // No proof yet: the agent proves the key only to a peer that has proven it (see onAuth).
    this.conn.sendJson({
      t: 'challenge',
      protocol,
      agentId: this.ctx.identity.agentId,
      agentVersion: MUSTER_VERSION,
      nonce: this.agentNonce,
    });
  }

  private onAuth(message: unknown): void {
    const hello = this.hello!;
    const binding = this.ctx.outbound?.binding ?? channelBinding(this.conn.socket);
    const check = checkAuth(
      {
        accessKeys: this.ctx.outbound?.accessKeys ?? [this.ctx.identity.accessKey],
        instances: this.ctx.instances,
        leases: this.ctx.leases,
      },
      hello,
      this.agentNonce,
      binding,
      message,
    );
    if ('refused' in check) {
      this.refuseAuth(hello, check);
      return;
    }
    const publicKey = check.claimKey;
    const accessKey = check.accessKey;
    this.claimKey = publicKey;
    const kept = this.ctx.outbound?.authenticated(
      accessKey,
      rekey(accessKey, hello.nonce, this.agentNonce, binding),
      hello.holderId,
    );
    if (kept === false) {
      this.state = 'closed';
      clearTimeout(this.handshakeTimer);
      this.conn.close(
        new MusterError(
          'DUPLICATE_LINK',
          'this agent already has a link to this coordinator, dialed at another of its URLs',
        ),
      );
      return;
    }
    this.state = 'ready';
    this.conn.setMaxFrameBytes(this.ctx.options.maxFrameBytes);
    this.ctx.onAuthenticated(this);
    clearTimeout(this.handshakeTimer);
    this.ctx.instances
      .open(hello.product, hello.instanceId, this.sourceIp, publicKey)
      .then((instance) => {
        // open() counted this connection, so the instance cannot be removed meanwhile.
        if (this.state === 'closed') {
          instance.connections--;
          instance.lastActive = Date.now();
          return;
        }
        this.instance = instance;
        this.log.info(
          { instance: instance.key, productVersion: hello.productVersion },
          'coordinator connected',
        );
        this.conn.sendJson({
          t: 'ready',
          proof: agentProof(accessKey, hello.nonce, this.agentNonce, binding),
          instance: {
            key: instance.key,
            product: instance.record.product,
            dir: instance.record.dirName,
          },
          limits: { maxFrameBytes: this.ctx.options.maxFrameBytes },
          capacity: {
            cores: availableParallelism(),
            ...(this.ctx.identity.bootId === undefined ? {} : { bootId: this.ctx.identity.bootId }),
          },
          ...(hello.clusterId === undefined
            ? {}
            : { lease: this.ctx.leases.acquire(hello.clusterId, this.holder, this.leaseTerm) }),
        });
      })
      .catch((err: unknown) => {
        if (err instanceof InstanceBoundError) {
          this.refuseBound('instance', err.key, err.boundTo);
          return;
        }
        this.fail(toMusterError(err, 'STORAGE_ERROR'));
      });
  }

  /** Says why an auth was refused (limited: the peer is a stranger until it passes) and hangs up. */
  private refuseAuth(hello: Hello, check: Extract<AuthCheck, { refused: unknown }>): void {
    switch (check.refused) {
      case 'unexpected':
        this.fail(check.error);
        return;
      case 'wrong-key':
        this.ctx.strangers.warn('AUTH_FAILED', 'authentication failed: wrong access key', {
          peer: this.sourceIp,
          product: hello.product,
        });
        this.fail(check.error, true);
        return;
      case 'invalid-claim':
        this.ctx.strangers.warn(
          'INSTANCE_CLAIM_INVALID',
          'instance claim refused: missing or invalid signature',
          {
            peer: this.sourceIp,
            product: hello.product,
            instanceId: hello.instanceId,
            clusterId: hello.clusterId,
          },
        );
        this.fail(check.error, true);
        return;
      case 'bound':
        this.refuseBound(check.what, check.id, check.boundTo);
        return;
    }
  }

  /** Another coordinator's key holds this instance or cluster: refuse, and say so in the log. */
  private refuseBound(what: 'instance' | 'cluster', id: string, boundTo: string): void {
    this.log.warn(
      { [what]: id, boundTo: instanceKeyFingerprint(boundTo), product: this.hello?.product },
      `${what} claim refused: bound to another coordinator's key`,
    );
    this.fail(
      new MusterError(
        'INSTANCE_BOUND',
        `${what} ${id} on this agent belongs to another coordinator (key ${instanceKeyFingerprint(boundTo)}); give this coordinator its own Agent.InstanceId, or have the agent's admin unbind it (muster agent ${what === 'instance' ? 'instances --unbind' : 'leases --reset'} ${id})`,
        { [what]: id },
      ),
      true,
    );
  }

  // ---- requests -----------------------------------------------------------------------------

  private onRequest(raw: { t?: unknown; id?: unknown } | null): void {
    const re = requestIdOf(raw?.id);
    if (this.instance === undefined) {
      this.sendError(
        re,
        new MusterError('UNEXPECTED_MESSAGE', 'wait for "ready" before sending requests'),
      );
      return;
    }
    if (typeof raw?.t !== 'string' || !clientMessageTypes.has(raw.t)) {
      this.sendError(
        re,
        new MusterError('UNKNOWN_MESSAGE', `unknown message type ${describeType(raw?.t)}`),
      );
      return;
    }
    const parsed = clientMessageSchema.safeParse(raw);
    if (!parsed.success) {
      this.sendError(re, invalid(raw.t, parsed.error));
      return;
    }
    const message = parsed.data;
    this.handle(this.instance, message).catch((err: unknown) => {
      const error = toMusterError(err);
      if (error.code === 'INTERNAL') this.log.error({ err }, `request ${message.t} failed`);
      this.sendError(message.id, error);
    });
  }

  private async handle(instance: Instance, message: ClientMessage): Promise<void> {
    switch (message.t) {
      case 'ping':
        // A holder's heartbeat renews its lease.
        if (this.hello?.clusterId !== undefined) {
          this.ctx.leases.renew(this.hello.clusterId, this.holder, this.leaseTerm);
        }
        this.conn.sendJson({ t: 'pong', re: message.id });
        return;
      case 'lease.acquire': {
        const cluster = this.requireCluster();
        // The cluster's key is checked at every bid: after an agent admin's reset, the next
        // claimant binds it, and a connection that claimed it before does not bid on that.
        if (this.claimKey !== undefined) {
          const bound = this.ctx.leases.bind(cluster, this.claimKey);
          if (bound !== true) {
            this.refuseBound('cluster', cluster, bound);
            return;
          }
        }
        this.leaseTerm = message.term;
        this.conn.sendJson({
          t: 'lease',
          re: message.id,
          ...this.ctx.leases.acquire(cluster, this.holder, message.term),
        });
        return;
      }
      case 'lease.release':
        this.ctx.leases.release(this.requireCluster(), this.holder, this.leaseTerm);
        this.conn.sendJson({ t: 'ack', re: message.id });
        return;
      case 'sync.offer':
        return this.sync.offer(instance, message);
      case 'blobs.offer':
        return offerBlobs(this.ctx, this.conn, this.uploads, message);
      case 'blob.get':
        return serveBlob(this.ctx, this.conn, message.id, message.sha256);
      case 'task.start': {
        if (this.ctx.isDraining()) throw new MusterError('AGENT_SHUTTING_DOWN');
        this.requireLeaseIfClustered();
        const synced = this.sync.synced;
        if (synced === undefined) {
          throw new MusterError(
            'NOT_SYNCED',
            'sync a host version on this connection before starting tasks',
          );
        }
        const { id: _id, t: _t, ...spec } = message;
        const record = await this.ctx.tasks.start(instance, synced, spec);
        this.conn.sendJson({
          t: 'task.accepted',
          re: message.id,
          taskId: record.taskId,
          nextSeq: 0,
        });
        await record.follow(this.following.followerFor(record), 0);
        return;
      }
      case 'task.attach': {
        const record = this.ctx.tasks.get(instance, message.taskId);
        this.conn.sendJson({
          t: 'task.accepted',
          re: message.id,
          taskId: record.taskId,
          nextSeq: record.seq,
        });
        await record.follow(this.following.followerFor(record), message.fromSeq);
        return;
      }
      case 'task.cancel':
        this.ctx.tasks.cancel(instance, message.taskId);
        this.conn.sendJson({ t: 'ack', re: message.id });
        return;
      case 'task.release':
        await this.ctx.tasks.release(instance, message.taskId);
        this.conn.sendJson({ t: 'ack', re: message.id });
        return;
      case 'tasks.list':
        this.conn.sendJson({
          t: 'tasks',
          re: message.id,
          tasks: [...instance.tasks.values()].map((r) => ({
            taskId: r.taskId,
            extension: r.spec.extension,
            operation: r.spec.operation,
            state: r.state,
            nextSeq: r.seq,
            startedAt: r.startedAt.toISOString(),
            attached: r.isFollowed,
          })),
        });
        return;
    }
  }

  private requireCluster(): string {
    const cluster = this.hello?.clusterId;
    if (cluster === undefined) {
      throw new MusterError('UNEXPECTED_MESSAGE', 'leases need a clusterId in hello');
    }
    return cluster;
  }

  /** Fencing: a connection of a cluster starts work only while it holds the cluster's lease. */
  private requireLeaseIfClustered(): void {
    const cluster = this.hello?.clusterId;
    if (cluster === undefined) return;
    const state = this.ctx.leases.stateOf(cluster, this.holder, this.leaseTerm);
    if (!state.held) {
      throw new MusterError(
        'LEASE_NOT_HELD',
        `cluster ${cluster}'s lease on this agent is held with term ${state.term}${state.expiresInMs > 0 ? ` for another ${Math.ceil(state.expiresInMs / 1000)} s` : ''}; this connection has term ${this.leaseTerm}`,
        { term: state.term, expiresInMs: state.expiresInMs },
      );
    }
  }

  // ---- errors and close ---------------------------------------------------------------------

  private sendError(re: number | undefined, err: MusterError): void {
    const body = boundedWire(err);
    this.conn.sendJson(re === undefined ? { t: 'error', ...body } : { t: 'error', re, ...body });
  }

  /** Closes the connection with `err`, logging it unless the caller did (`logged`). */
  private fail(err: MusterError, logged = false): void {
    if (logged) {
      // Said already, with more detail.
    } else if (this.state === 'hello' || this.state === 'auth') {
      // Before authentication anyone can make these: a flood gets a line per code per 10 s.
      this.ctx.strangers.warn(err.code, `handshake refused (${err.code})`, {
        peer: this.sourceIp,
        error: err.message.slice(0, 300),
      });
    } else {
      this.log.warn({ code: err.code }, err.message);
    }
    this.state = 'closed';
    this.conn.close(err);
  }

  private onClose(): void {
    this.state = 'closed';
    clearTimeout(this.handshakeTimer);
    this.uploads.abandonAll();
    this.sync.release();
    this.following.unfollowAll();
    if (this.instance) {
      this.instance.connections--;
      this.instance.lastActive = Date.now();
      this.instance.record.lastSeen = new Date().toISOString();
      const instance = this.instance;
      // One line at most per disconnect, which is logged anyway: no flood to limit.
      void instance
        .save()
        .catch((err: unknown) =>
          this.log.warn({ err, instance: instance.key }, 'could not save the instance record'),
        );
      this.log.info({ instance: this.instance.key }, 'coordinator disconnected');
    }
    this.ctx.onSessionClosed(this);
  }
}

function normaliseIp(address: string): string {
  return address.startsWith('::ffff:') ? address.slice(7) : address;
}
