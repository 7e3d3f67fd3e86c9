/**
 * A deliberately low-level peer for end-to-end tests that send what a well-behaved client never
 * would: raw bytes, odd frames, handshakes with wrong proofs. It speaks TLS (certificate not
 * checked) or plain TCP, decodes what the agent sends with the real FrameDecoder, and every wait
 * is bounded.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { channelBinding, clientProof, newNonce, signClaim } from '../../src/protocol/handshake.js';
import { PROTOCOL_MAX, PROTOCOL_MIN } from '../../src/protocol/messages.js';
import { TEST_INSTANCE_KEY } from './agent-process.js';
import {
  encodeBinaryFramePrefix,
  encodeJsonFrame,
  FrameDecoder,
  type Frame,
} from '../../src/protocol/framing.js';

const WAIT_MS = 10_000;

export interface RawPeerOptions {
  host?: string;
  port: number;
  /** TLS without checking the certificate (default), or plain TCP on a TLS port (garbage). */
  tls?: boolean;
  /** Bind the client socket to this local address (127.0.0.x act as distinct sources). */
  localAddress?: string;
}

export interface HelloFields {
  product?: string;
  productVersion?: string;
  instanceId?: string;
  clusterId?: string;
  protocol?: { min: number; max: number };
  nonce?: string;
}

export type JsonMessage = Record<string, unknown> & { t?: unknown };

export class RawPeer {
  private readonly frames: Frame[] = [];
  private waiters: (() => void)[] = [];
  private ended = false;
  /** Set when the agent sends bytes this peer cannot decode (it never should). */
  decodeError: unknown;
  readonly closed: Promise<void>;

  private constructor(readonly socket: Socket | TLSSocket) {
    const decoder = new FrameDecoder(64 * 1024 * 1024);
    socket.on('data', (chunk: Buffer) => {
      try {
        this.frames.push(...decoder.push(chunk));
      } catch (err) {
        this.decodeError = err;
      }
      this.wake();
    });
    socket.on('error', () => {
      // Resets are expected: the agent hangs up on misbehaving peers. 'close' follows.
    });
    this.closed = new Promise((resolve) =>
      socket.once('close', () => {
        this.ended = true;
        this.wake();
        resolve();
      }),
    );
  }

  static async connect(options: RawPeerOptions): Promise<RawPeer> {
    const host = options.host ?? '127.0.0.1';
    const bind = options.localAddress === undefined ? {} : { localAddress: options.localAddress };
    const socket = await new Promise<Socket | TLSSocket>((resolve, reject) => {
      const s: Socket | TLSSocket =
        options.tls === false
          ? netConnect({ host, port: options.port, ...bind }, () => resolve(s))
          : tlsConnect({ host, port: options.port, rejectUnauthorized: false, ...bind }, () =>
              resolve(s),
            );
      s.once('error', reject);
      s.setTimeout(WAIT_MS, () => s.destroy(new Error('connect timed out')));
    });
    socket.setTimeout(0);
    const peer = new RawPeer(socket);
    socket.removeAllListeners('timeout');
    return peer;
  }

  get isClosed(): boolean {
    return this.ended;
  }

  /** Raw bytes, as they are. */
  write(bytes: Buffer): void {
    if (!this.socket.destroyed) this.socket.write(bytes);
  }

  sendJson(message: object): void {
    this.write(encodeJsonFrame(message));
  }

  sendBinary(header: object, data: Buffer): void {
    this.write(Buffer.concat([encodeBinaryFramePrefix(header, data.length), data]));
  }

  /** The next frame from the agent; rejects when the connection closes first or on timeout. */
  async next(timeoutMs = WAIT_MS): Promise<Frame> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const frame = this.frames.shift();
      if (frame !== undefined) return frame;
      if (this.ended) throw new Error('the connection closed before a frame arrived');
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no frame from the agent in ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** The next JSON message (a binary frame here is a test failure). */
  async nextJson(timeoutMs = WAIT_MS): Promise<JsonMessage> {
    const frame = await this.next(timeoutMs);
    if (frame.kind !== 'json') throw new Error('expected a JSON frame, got a binary one');
    return frame.value as JsonMessage;
  }

  /** Skips messages until one matches (e.g. past task.output); bounded like next(). */
  async nextMatching(
    match: (m: JsonMessage) => boolean,
    timeoutMs = WAIT_MS,
  ): Promise<JsonMessage> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const message = await this.nextJson(Math.max(1, deadline - Date.now()));
      if (match(message)) return message;
    }
  }

  /** Resolves once the agent has closed the connection; rejects after timeoutMs. */
  async waitClosed(timeoutMs = WAIT_MS): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        this.closed,
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`the agent did not close the connection in ${timeoutMs} ms`)),
            timeoutMs,
          );
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Sends a valid hello; returns the challenge (or whatever the agent answered). */
  async hello(fields: HelloFields = {}): Promise<{ nonce: string; answer: JsonMessage }> {
    const nonce = fields.nonce ?? newNonce();
    this.sendJson({
      t: 'hello',
      protocol: fields.protocol ?? { min: PROTOCOL_MIN, max: PROTOCOL_MAX },
      product: fields.product ?? 'muster',
      productVersion: fields.productVersion ?? '0.1.0-raw',
      ...(fields.instanceId === undefined ? {} : { instanceId: fields.instanceId }),
      ...(fields.clusterId === undefined ? {} : { clusterId: fields.clusterId }),
      nonce,
    });
    return { nonce, answer: await this.nextJson() };
  }

  /** The proof a client that knows `accessKey` sends for this connection. */
  proofFor(accessKey: string, clientNonce: string, agentNonce: string): string {
    return clientProof(accessKey, clientNonce, agentNonce, channelBinding(this.socket));
  }

  /** The claim a coordinator holding `instanceKey` signs for this connection. */
  claimFor(
    instanceKey: string,
    fields: HelloFields,
    clientNonce: string,
    agentNonce: string,
  ): { publicKey: string; signature: string } {
    return signClaim(instanceKey, {
      product: fields.product ?? 'muster',
      instanceId: fields.instanceId,
      clusterId: fields.clusterId,
      clientNonce,
      agentNonce,
      binding: channelBinding(this.socket),
    });
  }

  /**
   * Sends hello and auth (with a claim signed by `instanceKey` when the hello claims an id);
   * resolves with what the agent answered to auth: `ready`, or an error.
   */
  async authenticate(
    accessKey: string,
    fields: HelloFields = {},
    instanceKey = TEST_INSTANCE_KEY,
  ): Promise<JsonMessage> {
    const { nonce, answer } = await this.hello(fields);
    if (answer.t !== 'challenge')
      throw new Error(`expected a challenge, got ${JSON.stringify(answer)}`);
    const agentNonce = answer.nonce as string;
    const claims = fields.instanceId !== undefined || fields.clusterId !== undefined;
    this.sendJson({
      t: 'auth',
      proof: this.proofFor(accessKey, nonce, agentNonce),
      ...(claims ? { claim: this.claimFor(instanceKey, fields, nonce, agentNonce) } : {}),
    });
    return this.nextJson();
  }

  /** A full, correct handshake; resolves with the `ready` message. */
  async handshake(
    accessKey: string,
    fields: HelloFields = {},
    instanceKey = TEST_INSTANCE_KEY,
  ): Promise<JsonMessage> {
    const ready = await this.authenticate(accessKey, fields, instanceKey);
    if (ready.t !== 'ready') throw new Error(`expected ready, got ${JSON.stringify(ready)}`);
    return ready;
  }

  destroy(): void {
    this.socket.destroy();
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }
}

/**
 * True while a live process of group `pgid` exists. kill(-pgid, 0) also reaches zombies that wait
 * for PID 1 to reap them (slow in some containers), so on Linux those are not counted.
 */
export function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return false;
  }
  const members = liveGroupMembers(pgid);
  return members === undefined || members.length > 0;
}

/** Pids of the group's processes that are not zombies; undefined without /proc. */
export function liveGroupMembers(pgid: number): number[] | undefined {
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return undefined;
  }
  const pids: number[] = [];
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue;
    }
    const [state, , pgrp] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(pgrp) === pgid && state !== 'Z') pids.push(Number(entry));
  }
  return pids;
}
