/**
 * The wire messages between a coordinator (client) and an agent, version 1. Every JSON frame is
 * one of these, discriminated by `t`. Requests carry an `id` chosen by the client; answers carry
 * `re` with that id. Binary frames carry blob chunks (see framing.ts) with a JSON header below.
 *
 * The `hello`/`challenge`/`auth`/`ready` exchange is the "meta" layer: it must stay compatible
 * forever, so it only ever gains optional fields. Everything after `ready` is chosen by the
 * negotiated protocol version.
 */
import { z } from 'zod';
import { manifestSchema, sha256Hex } from './manifest.js';

/**
 * Protocol 2 reorders the handshake so the coordinator proves the access key first (the agent's
 * proof in `challenge` was an offline guessing oracle for anyone who could connect) and binds an
 * instance id to its coordinator's key. Protocol 1 is refused.
 */
export const PROTOCOL_MIN = 2;
export const PROTOCOL_MAX = 2;

const id = z.number().int().nonnegative();
const taskId = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/, 'a task id');
const name = z.string().regex(/^[a-z0-9][a-z0-9._-]{0,63}$/, 'a lower-case name');
const nonce = z.string().regex(/^[0-9a-f]{64}$/);
/** Lease terms climb by one or two per failover; anything near 2^31 is a bid to lock others out. */
const term = z
  .number()
  .int()
  .nonnegative()
  .max(2 ** 31 - 1);
const errorBody = {
  code: z.string().max(64),
  message: z.string().max(4096),
  details: z.record(z.string(), z.unknown()).optional(),
};

// ---- meta layer ---------------------------------------------------------------------------

export const helloSchema = z.object({
  t: z.literal('hello'),
  protocol: z.object({ min: z.number().int().positive(), max: z.number().int().positive() }),
  product: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/),
  productVersion: z.string().min(1).max(64),
  instanceId: z
    .string()
    .regex(/^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/)
    .optional(),
  clusterId: z.string().max(128).optional(),
  leaseTerm: term.optional(),
  /**
   * Which coordinator of the cluster this is (a primary and its backup share the instance id and
   * key): a lease is held by an instance and a holder id, so two of them never share one term.
   */
  holderId: z
    .string()
    .regex(/^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/)
    .optional(),
  nonce,
});
export type Hello = z.infer<typeof helloSchema>;

export const challengeSchema = z.object({
  t: z.literal('challenge'),
  protocol: z.number().int().positive(),
  agentId: z.string().max(128),
  agentVersion: z.string().max(64),
  nonce,
  /** Protocol 1 only: the agent's proof came first. From protocol 2 it is in `ready`. */
  proof: nonce.optional(),
});
export type Challenge = z.infer<typeof challengeSchema>;

/**
 * A claim of the instance id (and cluster id) sent in hello: the coordinator's instance public
 * key (Ed25519, SPKI DER, base64) and its signature over the handshake (see instanceClaimData).
 * The agent binds the instance to the first key that claims it and refuses every other key.
 */
export const instanceClaimSchema = z.object({
  publicKey: z
    .string()
    .min(40)
    .max(200)
    .regex(/^[A-Za-z0-9+/]+=*$/),
  signature: z
    .string()
    .min(40)
    .max(200)
    .regex(/^[A-Za-z0-9+/]+=*$/),
});
export type InstanceClaim = z.infer<typeof instanceClaimSchema>;

export const authSchema = z.object({
  t: z.literal('auth'),
  proof: nonce,
  /** Required with an instanceId (or clusterId) in hello. */
  claim: instanceClaimSchema.optional(),
});
export type Auth = z.infer<typeof authSchema>;

export const readySchema = z.object({
  t: z.literal('ready'),
  /** The agent's proof of the access key, sent once the coordinator has proven it. */
  proof: nonce.optional(),
  instance: z.object({ key: z.string(), product: z.string(), dir: z.string() }),
  limits: z.object({ maxFrameBytes: z.number().int().positive() }),
  /** With a clusterId in hello: whether this connection holds the cluster's lease (fencing). */
  lease: z
    .object({
      held: z.boolean(),
      term: z.number().int().nonnegative(),
      expiresInMs: z.number().nonnegative(),
    })
    .optional(),
  /**
   * What the machine offers; coordinators default their slots to `cores`. `bootId` (agents since
   * issue 13): sha256 of "muster-boot:" + the kernel's boot id (src/common/boot-id.ts), so a
   * coordinator can tell agents that share a compile client's machine; absent: unknown. One
   * in another form (a future agent's) is read as absent rather than failing the handshake.
   */
  capacity: z
    .object({
      cores: z.number().int().positive(),
      bootId: sha256Hex.optional().catch(undefined),
    })
    .optional(),
});
export type Ready = z.infer<typeof readySchema>;

// ---- client -> agent ----------------------------------------------------------------------

const blobRef = z.strictObject({ sha256: sha256Hex, size: z.number().int().nonnegative() });
const inputFile = z.strictObject({
  path: z.string().min(1).max(1024),
  sha256: sha256Hex,
  mode: z.number().int().min(0).max(0o777),
});

export const clientMessageSchema = z.discriminatedUnion('t', [
  z.object({ t: z.literal('ping'), id }),
  /** Offer the host runtime + extensions; the agent answers sync.need, then sync.done. */
  z.object({ t: z.literal('sync.offer'), id, manifest: manifestSchema }),
  /** Offer blobs (task inputs); the agent answers blobs.need, then blobs.stored. */
  z.object({ t: z.literal('blobs.offer'), id, blobs: z.array(blobRef).max(100_000) }),
  z.object({ t: z.literal('blob.get'), id, sha256: sha256Hex }),
  z.object({
    t: z.literal('task.start'),
    id,
    taskId,
    extension: name,
    operation: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/),
    input: z.unknown().optional(),
    inputs: z.array(inputFile).max(100_000).optional(),
    outputs: z.array(z.string().min(1).max(1024)).max(1000).optional(),
    env: z.record(z.string(), z.string()).optional(),
    timeoutMs: z.number().int().positive().optional(),
  }),
  /** Re-attach to a task of this instance: replays its output from `fromSeq`, then follows it. */
  z.object({ t: z.literal('task.attach'), id, taskId, fromSeq: z.number().int().nonnegative() }),
  z.object({ t: z.literal('task.cancel'), id, taskId }),
  /** The client has the result: the agent may forget the task and remove its work dir. */
  z.object({ t: z.literal('task.release'), id, taskId }),
  z.object({ t: z.literal('tasks.list'), id }),
  /** Take (or keep) the cluster's lease with this term; needs a clusterId in hello. */
  z.object({ t: z.literal('lease.acquire'), id, term }),
  z.object({ t: z.literal('lease.release'), id }),
]);
export type ClientMessage = z.infer<typeof clientMessageSchema>;
export type ClientMessageType = ClientMessage['t'];
/** A request as its sender writes it, before the request table gives it an `id`. */
export type ClientRequest = ClientMessage extends infer M
  ? M extends ClientMessage
    ? Omit<M, 'id'>
    : never
  : never;
export const clientMessageTypes: ReadonlySet<string> = new Set(
  clientMessageSchema.options.map((o) => o.shape.t.value),
);

/** Header of a binary frame carrying part of a blob, in either direction. */
export const blobChunkHeaderSchema = z.object({
  t: z.literal('blob.chunk'),
  /** The request this chunk answers or serves: a sync.offer / blobs.offer id, or a blob.get id. */
  re: id,
  sha256: sha256Hex,
  offset: z.number().int().nonnegative(),
  size: z.number().int().nonnegative(),
  last: z.boolean(),
});
export type BlobChunkHeader = z.infer<typeof blobChunkHeaderSchema>;

// ---- agent -> client ----------------------------------------------------------------------

export const taskOutputFileSchema = z.object({
  path: z.string(),
  sha256: sha256Hex,
  size: z.number().int().nonnegative(),
  mode: z.number().int(),
});

export const taskResultSchema = z.object({
  status: z.enum(['succeeded', 'failed', 'cancelled', 'timed-out', 'lost']),
  exitCode: z.number().int().nullable().optional(),
  signal: z.string().nullable().optional(),
  value: z.unknown().optional(),
  error: z.object({ code: z.string(), message: z.string() }).optional(),
  outputs: z.array(taskOutputFileSchema).optional(),
  durationMs: z.number().nonnegative(),
});

export const taskInfoSchema = z.object({
  taskId,
  extension: z.string(),
  operation: z.string(),
  state: z.enum(['running', 'done']),
  nextSeq: z.number().int().nonnegative(),
  startedAt: z.string(),
  attached: z.boolean(),
});
export type TaskInfo = z.infer<typeof taskInfoSchema>;

export const agentMessageSchema = z.discriminatedUnion('t', [
  z.object({ t: z.literal('pong'), re: id }),
  z.object({ t: z.literal('error'), re: id.optional(), ...errorBody }),
  z.object({
    t: z.literal('sync.need'),
    re: id,
    versionId: sha256Hex,
    missing: z.array(sha256Hex),
  }),
  z.object({
    t: z.literal('sync.done'),
    re: id,
    versionId: sha256Hex,
    receivedBlobs: z.number().int().nonnegative(),
    receivedBytes: z.number().int().nonnegative(),
  }),
  z.object({ t: z.literal('blobs.need'), re: id, missing: z.array(sha256Hex) }),
  z.object({ t: z.literal('blobs.stored'), re: id }),
  z.object({ t: z.literal('task.accepted'), re: id, taskId, nextSeq: z.number().int() }),
  z.object({
    t: z.literal('task.output'),
    taskId,
    seq: z.number().int().nonnegative(),
    stream: z.enum(['stdout', 'stderr', 'log']),
    data: z.string(),
  }),
  z.object({ t: z.literal('task.done'), taskId, result: taskResultSchema }),
  z.object({ t: z.literal('ack'), re: id }),
  z.object({ t: z.literal('tasks'), re: id, tasks: z.array(taskInfoSchema) }),
  z.object({
    t: z.literal('lease'),
    re: id,
    held: z.boolean(),
    term: z.number().int().nonnegative(),
    expiresInMs: z.number().nonnegative(),
  }),
]);
export type AgentMessage = z.infer<typeof agentMessageSchema>;

/** An error frame: what either side's connection sends before it hangs up on a bad frame. */
export type ErrorFrame = Extract<AgentMessage, { t: 'error' }>;

/**
 * Every JSON frame a coordinator sends: the handshake's hello and auth, then requests. The
 * coordinator's connection is typed with it, so it cannot send what the agent would refuse.
 */
export type ClientWireMessage = Hello | Auth | ClientMessage;
/** Every JSON frame an agent sends: the handshake's challenge and ready, then its messages. */
export type AgentWireMessage = Challenge | Ready | AgentMessage;
export type AnyWireMessage = ClientWireMessage | AgentWireMessage;
