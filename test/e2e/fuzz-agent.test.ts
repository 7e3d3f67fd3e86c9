/**
 * Fuzzes one real agent with mutations of a legitimate coordinator session: the frames of
 * hello/auth, ping, blobs.offer with its chunks, sync.offer, task.start of core/noop, tasks.list,
 * blob.get, task.cancel and task.release, as AgentClient sends them. fast-check picks, per run,
 * a few mutations: JSON fields replaced by other types, huge strings, deep nesting, odd numbers,
 * prototype keys and other message types; flipped, inserted and deleted bytes; lying length
 * prefixes, kinds and header lengths; frames dropped, repeated, reordered, or inserted (binary
 * chunks at the wrong time, garbage); the session cut short, sent without waiting for answers, or
 * dribbled in small pieces. Each run is a fresh TLS connection to the same agent process.
 *
 * What must hold: everything the agent sends decodes and matches the protocol's schemas, it never
 * answers INTERNAL or logs an error, an unmutated session still gets the right answers, and at
 * every checkpoint the agent runs, serves a well-behaved AgentClient (sync and a noop task at the
 * end) and stays within baseline + 128 MiB of resident memory.
 *
 * Bounds: MUSTER_FUZZ_RUNS runs (default 3000) or MUSTER_FUZZ_SECONDS (default 20; 50 with
 * MUSTER_SOAK=1), whichever
 * ends first; MUSTER_TEST_SEED repeats a run (the seed is printed at the start).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import {
  coreExtensionDir,
  createBundle,
  defaultHostDir,
  type Bundle,
} from '../../src/protocol/client/bundle.js';
import type { Frame } from '../../src/protocol/framing.js';
import { newNonce } from '../../src/protocol/handshake.js';
import {
  agentMessageSchema,
  blobChunkHeaderSchema,
  challengeSchema,
  clientMessageTypes,
  PROTOCOL_MAX,
  PROTOCOL_MIN,
  readySchema,
} from '../../src/protocol/messages.js';
import {
  cleanup,
  makeTempDir,
  startAgent,
  TEST_INSTANCE_KEY,
  type StartedAgent,
} from '../helpers/agent-process.js';
import {
  applyByteEdits,
  applyJsonEdits,
  brief,
  byteEdit,
  expectMemoryBelow,
  fuzzBounds,
  hostileValue,
  jsonEdit,
  MiB,
  rssBytes,
  runFuzz,
  stringifyRaw,
  type ByteEdit,
  type JsonEdit,
} from '../helpers/fuzz.js';
import { soakOr } from '../helpers/soak.js';
import { RawPeer } from '../helpers/raw-peer.js';

const bounds = fuzzBounds('fuzz-agent', { runs: 3000, seconds: soakOr(20, 50) });
/** A legitimate client checks in (and memory is measured) every this many runs. */
const CHECK_EVERY = 100;
/**
 * Measured (two arenas): 84 MiB at the start, 130-166 MiB after 600-1,300 runs, flat after the
 * first few hundred. Growth without bound passes any headroom; 128 MiB keeps a noisy run from
 * failing at the plateau, as for the coordinator (fuzz-api).
 */
const MEMORY_HEADROOM = 128 * MiB;
/** How long a step waits for its answer before the session goes on without it. */
const STEP_WAIT_MS = 1000;
/**
 * ...or until the agent has been quiet this long: a mutated request may be answered with
 * another id, or not at all. After the last step, the same, at most DRAIN_MS in all.
 */
const QUIET_MS = 40;
const DRAIN_MS = 800;
const INSTANCE = 'fuzz';

let scratch = '';
let agent: StartedAgent;
let bundle: Bundle;
let baselineRss = 0;

before(async () => {
  scratch = await makeTempDir('muster-fuzz-agent-');
  // glibc gives each thread that allocates (libuv's pool writes blobs) an arena of its own and
  // keeps them after MiB-sized frames: measured over 1,300 runs, resident memory rose in steps to
  // 187 MiB with the default, and stayed at 130-150 MiB with two arenas. Two arenas keep that
  // allocator effect out, so the bound measures what the agent itself holds.
  agent = await startAgent({ dataDir: join(scratch, 'agent'), env: { MALLOC_ARENA_MAX: '2' } });
  // A private copy of the host and core extension: a rebuild of dist/ must not change them.
  await cp(defaultHostDir, join(scratch, 'bundle', 'host'), { recursive: true });
  await cp(coreExtensionDir, join(scratch, 'bundle', 'core'), { recursive: true });
  bundle = await createBundle({
    hostDir: join(scratch, 'bundle', 'host'),
    extensionDirs: [join(scratch, 'bundle', 'core')],
  });
});

after(async () => {
  await cleanup();
  if (scratch !== '') {
    // Version directories are read-only; make them removable for a non-root run.
    spawnSync('chmod', ['-R', 'u+w', scratch]);
    await rm(scratch, { recursive: true, force: true });
  }
});

// ---- the recorded session -----------------------------------------------------------------------

interface Live {
  helloNonce: string;
  agentNonce: string | undefined;
}

interface Step {
  name: string;
  /** A JSON message, or the JSON header of a binary frame (with `data`). */
  message: (live: Live) => unknown;
  data?: Buffer;
  /** Waits (bounded) for a frame like this before the next step. */
  awaits?: (frame: Frame) => boolean;
  /** How long to wait for it (default STEP_WAIT_MS). */
  waitMs?: number;
}

/** Per run: a blob the agent has never seen, so the upload path runs every time. */
interface RunInput {
  run: number;
  blob: Buffer;
  sha256: string;
}

function answers(id: number, ...types: string[]): (frame: Frame) => boolean {
  return (frame) => {
    if (frame.kind === 'binary') {
      const header = frame.header as { re?: unknown; last?: unknown } | null;
      return types.includes('blob.chunk') && header?.re === id && header.last === true;
    }
    const m = frame.value as { t?: unknown; re?: unknown; taskId?: unknown } | null;
    // An error answers this step, whatever its id (a mutation may have changed it).
    if (m?.t === 'error') return true;
    return m?.re === id && types.includes(String(m.t));
  };
}

function taskDone(taskId: string, startId: number): (frame: Frame) => boolean {
  const refused = answers(startId);
  return (frame) => {
    if (refused(frame)) return true;
    const m = frame.kind === 'json' ? (frame.value as { t?: unknown; taskId?: unknown }) : null;
    return m?.t === 'task.done' && m.taskId === taskId;
  };
}

/** What a coordinator sends in one session, as AgentClient sends it. */
function recordedSession(input: RunInput): Step[] {
  const taskId = `fuzz-${input.run}`;
  const half = Math.floor(input.blob.length / 2);
  const chunk = (offset: number, data: Buffer, last: boolean): Step => ({
    name: `blob.chunk@${offset}`,
    message: () => ({
      t: 'blob.chunk',
      re: 2,
      sha256: input.sha256,
      offset,
      size: input.blob.length,
      last,
    }),
    data,
    ...(last ? { awaits: answers(2, 'blobs.stored') } : {}),
  });
  const hello = {
    t: 'hello',
    protocol: { min: PROTOCOL_MIN, max: PROTOCOL_MAX },
    product: 'muster',
    productVersion: '0.1.0-fuzz',
    instanceId: INSTANCE,
  };
  return [
    {
      name: 'hello',
      message: (live) => ({ ...hello, nonce: live.helloNonce }),
      awaits: () => true,
    },
    {
      name: 'auth',
      // Filled in from the challenge, as a real coordinator does (live.agentNonce).
      message: () => ({ t: 'auth' }),
      // As a real coordinator: no request before `ready` (or the refusal). Not any frame, and
      // not within a second only: on Node 24 under CI's load a legitimate session's `ready`
      // came later, and its ping met "wait for ready" (a patient run waits up to this long).
      awaits: (frame) => {
        const t = frame.kind === 'json' ? (frame.value as { t?: unknown } | null)?.t : undefined;
        return t === 'ready' || t === 'error';
      },
      waitMs: 10_000,
    },
    { name: 'ping', message: () => ({ t: 'ping', id: 1 }), awaits: answers(1, 'pong') },
    {
      name: 'blobs.offer',
      message: () => ({
        t: 'blobs.offer',
        id: 2,
        blobs: [{ sha256: input.sha256, size: input.blob.length }],
      }),
      awaits: answers(2, 'blobs.need', 'blobs.stored'),
    },
    chunk(0, input.blob.subarray(0, half), false),
    chunk(half, input.blob.subarray(half), true),
    {
      name: 'sync.offer',
      message: () => ({ t: 'sync.offer', id: 3, manifest: bundle.manifest }),
      awaits: answers(3, 'sync.done'),
    },
    {
      name: 'task.start',
      message: () => ({
        t: 'task.start',
        id: 4,
        taskId,
        extension: 'core',
        operation: 'noop',
        input: { run: input.run },
        inputs: [{ path: 'in/blob.txt', sha256: input.sha256, mode: 0o644 }],
        env: { FUZZ: '1' },
        timeoutMs: 30_000,
      }),
      awaits: taskDone(taskId, 4),
      // The instance's host process may have to start first.
      waitMs: 5000,
    },
    {
      name: 'tasks.list',
      message: () => ({ t: 'tasks.list', id: 5 }),
      awaits: answers(5, 'tasks'),
    },
    {
      name: 'blob.get',
      message: () => ({ t: 'blob.get', id: 6, sha256: input.sha256 }),
      awaits: answers(6, 'blob.chunk'),
    },
    {
      name: 'task.cancel',
      message: () => ({ t: 'task.cancel', id: 7, taskId }),
      awaits: answers(7, 'ack'),
    },
    {
      name: 'task.release',
      message: () => ({ t: 'task.release', id: 8, taskId }),
      awaits: answers(8, 'ack'),
    },
    { name: 'ping', message: () => ({ t: 'ping', id: 9 }), awaits: answers(9, 'pong') },
  ];
}

// ---- mutations ----------------------------------------------------------------------------------

/** Byte edits, plus lies in the frame's own fields. */
type FrameEdit =
  ByteEdit | { op: 'length' | 'headerLength'; value: number } | { op: 'kind'; value: number };

interface ExtraFrame {
  kind: 'json' | 'binary' | 'raw';
  value: unknown;
  data: Uint8Array;
}

type Mutation =
  | { op: 'json'; step: number; edits: JsonEdit[] }
  | { op: 'retype'; step: number; t: string }
  | { op: 'frame'; step: number; edits: FrameEdit[] }
  | { op: 'drop'; step: number }
  | { op: 'repeat'; step: number; times: number }
  | { op: 'swap'; step: number; other: number }
  | { op: 'insert'; step: number; extra: ExtraFrame }
  | { op: 'stop'; step: number }
  | { op: 'no-wait' }
  | { op: 'dribble'; pieces: number[] };

const messageTypes = [
  ...clientMessageTypes,
  'hello',
  'auth',
  'blob.chunk',
  'pong',
  'error',
  'task.done',
  'ready',
];

const frameEdit: fc.Arbitrary<FrameEdit> = fc.oneof(
  { arbitrary: byteEdit(), weight: 4 },
  {
    arbitrary: fc.record({
      op: fc.constantFrom('length' as const, 'headerLength' as const),
      value: fc.oneof(
        fc.constantFrom(0, 1, 2, 4, 5, 4 * MiB, 4 * MiB + 1, 0x7fffffff, 0xffffffff),
        fc.nat({ max: 0xffffffff }),
      ),
    }),
    weight: 2,
  },
  {
    arbitrary: fc.record({ op: fc.constant('kind' as const), value: fc.nat({ max: 255 }) }),
    weight: 1,
  },
);

const extraFrame: fc.Arbitrary<ExtraFrame> = fc.oneof(
  fc.record({
    kind: fc.constant('json' as const),
    value: fc.record({
      t: fc.oneof(fc.constantFrom(...messageTypes), fc.string({ maxLength: 12 })),
      id: fc.oneof(fc.nat({ max: 12 }), hostileValue()),
      extra: fc.jsonValue({ maxDepth: 2 }),
    }),
    data: fc.constant(new Uint8Array()),
  }),
  fc.record({
    // A blob chunk at the wrong time, for a request that may or may not exist.
    kind: fc.constant('binary' as const),
    value: fc.record({
      t: fc.constant('blob.chunk'),
      re: fc.oneof(fc.nat({ max: 12 }), hostileValue()),
      sha256: fc.oneof(fc.constant('FRESH'), fc.stringMatching(/^[0-9a-f]{64}$/), hostileValue()),
      offset: fc.oneof(fc.nat({ max: 5000 }), hostileValue()),
      size: fc.oneof(fc.nat({ max: 5000 }), hostileValue()),
      last: fc.oneof(fc.boolean(), hostileValue()),
    }),
    data: fc.uint8Array({ maxLength: 4096 }),
  }),
  fc.record({
    kind: fc.constant('raw' as const),
    value: fc.constant(null),
    data: fc.uint8Array({ minLength: 1, maxLength: 64 }),
  }),
);

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  {
    arbitrary: fc.record({
      op: fc.constant('json' as const),
      step: fc.nat(),
      edits: fc.array(jsonEdit([...messageTypes, 'sleep', 'files.list', 'FRESH']), {
        minLength: 1,
        maxLength: 3,
      }),
    }),
    weight: 8,
  },
  {
    arbitrary: fc.record({
      op: fc.constant('retype' as const),
      step: fc.nat(),
      t: fc.oneof(fc.constantFrom(...messageTypes), fc.string({ maxLength: 12 })),
    }),
    weight: 2,
  },
  {
    arbitrary: fc.record({
      op: fc.constant('frame' as const),
      step: fc.nat(),
      edits: fc.array(frameEdit, { minLength: 1, maxLength: 3 }),
    }),
    weight: 4,
  },
  { arbitrary: fc.record({ op: fc.constant('drop' as const), step: fc.nat() }), weight: 2 },
  {
    arbitrary: fc.record({
      op: fc.constant('repeat' as const),
      step: fc.nat(),
      times: fc.integer({ min: 2, max: 5 }),
    }),
    weight: 2,
  },
  {
    arbitrary: fc.record({ op: fc.constant('swap' as const), step: fc.nat(), other: fc.nat() }),
    weight: 2,
  },
  {
    arbitrary: fc.record({ op: fc.constant('insert' as const), step: fc.nat(), extra: extraFrame }),
    weight: 3,
  },
  { arbitrary: fc.record({ op: fc.constant('stop' as const), step: fc.nat() }), weight: 1 },
  { arbitrary: fc.constant({ op: 'no-wait' as const }), weight: 1 },
  {
    arbitrary: fc.record({
      op: fc.constant('dribble' as const),
      pieces: fc.array(fc.integer({ min: 1, max: 7 }), { minLength: 1, maxLength: 8 }),
    }),
    weight: 1,
  },
);

/** A step as it will be sent: its recorded message with edits on the JSON and on the bytes. */
interface PlannedStep {
  step: Step;
  jsonEdits: JsonEdit[];
  frameEdits: FrameEdit[];
  /** A frame of its own (inserted), instead of the step's. */
  extra?: ExtraFrame;
}

interface Plan {
  steps: PlannedStep[];
  wait: boolean;
  /** Unmutated: wait for every answer as long as it takes (within STEP_WAIT_MS or waitMs). */
  patient: boolean;
  pieces: number[];
}

function planRun(session: Step[], mutations: readonly Mutation[]): Plan {
  let steps: PlannedStep[] = session.map((step) => ({ step, jsonEdits: [], frameEdits: [] }));
  let wait = true;
  let pieces: number[] = [];
  for (const m of mutations) {
    if (m.op === 'no-wait') {
      wait = false;
      continue;
    }
    if (m.op === 'dribble') {
      pieces = m.pieces;
      continue;
    }
    if (steps.length === 0) continue;
    const i = m.step % steps.length;
    const target = steps[i]!;
    switch (m.op) {
      case 'json':
        target.jsonEdits.push(...m.edits);
        break;
      case 'retype':
        target.jsonEdits.push({ op: 'add', at: 0, key: 't', value: m.t });
        break;
      case 'frame':
        target.frameEdits.push(...m.edits);
        break;
      case 'drop':
        steps.splice(i, 1);
        break;
      case 'repeat':
        steps.splice(i, 0, ...Array.from({ length: m.times - 1 }, () => ({ ...target })));
        break;
      case 'swap': {
        const j = m.other % steps.length;
        steps[i] = steps[j]!;
        steps[j] = target;
        break;
      }
      case 'insert':
        steps.splice(i, 0, {
          step: { name: `extra ${m.extra.kind}`, message: () => m.extra.value },
          jsonEdits: [],
          frameEdits: [],
          extra: m.extra,
        });
        break;
      case 'stop':
        steps = steps.slice(0, i);
        break;
    }
  }
  return { steps, wait, pieces, patient: mutations.length === 0 };
}

function frameOf(kind: number, body: Buffer): Buffer {
  const prefix = Buffer.alloc(5);
  prefix.writeUInt32BE(body.length + 1, 0);
  prefix.writeUInt8(kind, 4);
  return Buffer.concat([prefix, body]);
}

function binaryFrame(headerText: string, data: Buffer): Buffer {
  const header = Buffer.from(headerText);
  const length = Buffer.alloc(4);
  length.writeUInt32BE(header.length, 0);
  return frameOf(2, Buffer.concat([length, header, data]));
}

/** Swaps the placeholder for this run's blob hash (inserted chunks may name the real blob). */
function fresh(value: unknown, input: RunInput): unknown {
  if (value === 'FRESH') return input.sha256;
  if (Array.isArray(value)) return value.map((v) => fresh(v, input));
  if (
    value !== null &&
    typeof value === 'object' &&
    Object.getPrototypeOf(value) === Object.prototype
  ) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      Object.defineProperty(out, k, { value: fresh(v, input), enumerable: true, writable: true });
    }
    return out;
  }
  return value;
}

function encode(
  planned: PlannedStep,
  live: Live,
  input: RunInput,
  authMessage: () => unknown,
): Buffer {
  let bytes: Buffer;
  if (planned.extra?.kind === 'raw') bytes = Buffer.from(planned.extra.data);
  else {
    const recorded = planned.step.name === 'auth' ? authMessage() : planned.step.message(live);
    const message = fresh(applyJsonEdits(recorded, planned.jsonEdits), input);
    const text = stringifyRaw(message);
    const data = planned.extra ? Buffer.from(planned.extra.data) : planned.step.data;
    bytes =
      data !== undefined || planned.extra?.kind === 'binary'
        ? binaryFrame(text, data ?? Buffer.alloc(0))
        : frameOf(1, Buffer.from(text));
  }
  const byteEdits: ByteEdit[] = [];
  for (const edit of planned.frameEdits) {
    if (!('value' in edit)) {
      byteEdits.push(edit);
      continue;
    }
    bytes = Buffer.from(bytes);
    if (edit.op === 'kind') {
      if (bytes.length > 4) bytes[4] = edit.value;
      continue;
    }
    const at = edit.op === 'length' ? 0 : 5;
    if (bytes.length >= at + 4) bytes.writeUInt32BE(edit.value >>> 0, at);
  }
  return byteEdits.length ? applyByteEdits(bytes, byteEdits) : bytes;
}

// ---- one run ------------------------------------------------------------------------------------

/** Where a run's time goes: waits that ran out (answers that never came) cost the most. */
const stats = { waitsRunOut: 0, hungUp: 0 };

interface Outcome {
  frames: Frame[];
  closed: boolean;
  decodeError: unknown;
}

async function play(plan: Plan, input: RunInput): Promise<Outcome> {
  const peer = await RawPeer.connect({ port: agent.port });
  const frames: Frame[] = [];
  const live: Live = { helloNonce: newNonce(), agentNonce: undefined };
  /** Reads frames until one matches, the connection closes, `ms` pass or `quietMs` pass quietly. */
  const take = async (
    match: (f: Frame) => boolean,
    ms: number,
    quietMs = QUIET_MS,
  ): Promise<void> => {
    const deadline = Date.now() + ms;
    for (;;) {
      const left = deadline - Date.now();
      if (left <= 0) return;
      let frame: Frame;
      try {
        frame = await peer.next(Math.min(left, quietMs));
      } catch {
        if (!peer.isClosed) stats.waitsRunOut++;
        return; // closed, or nothing in time
      }
      frames.push(frame);
      const m = frame.kind === 'json' ? (frame.value as { t?: unknown; nonce?: unknown }) : null;
      if (m?.t === 'challenge' && typeof m.nonce === 'string') live.agentNonce = m.nonce;
      if (match(frame)) return;
    }
  };
  const authMessage = (): unknown => {
    const agentNonce = live.agentNonce ?? '0'.repeat(64);
    // Without a TLS session (the agent hung up) there is nothing to bind a proof to.
    if (peer.socket.destroyed) return { t: 'auth', proof: agentNonce };
    return {
      t: 'auth',
      proof: peer.proofFor(agent.accessKey, live.helloNonce, agentNonce),
      claim: peer.claimFor(
        TEST_INSTANCE_KEY,
        { instanceId: INSTANCE },
        live.helloNonce,
        agentNonce,
      ),
    };
  };
  let pieceIndex = 0;
  const send = async (bytes: Buffer): Promise<void> => {
    if (plan.pieces.length === 0) {
      peer.write(bytes);
      return;
    }
    // In small pieces, a tick apart, so the agent sees prefixes and bodies split anywhere.
    let offset = 0;
    while (offset < bytes.length && !peer.isClosed) {
      const size = plan.pieces[pieceIndex++ % plan.pieces.length]!;
      peer.write(bytes.subarray(offset, offset + size));
      offset += size;
      if (offset < 64 || pieceIndex % 16 === 0) await new Promise((r) => setImmediate(r));
      if (offset >= 256) {
        peer.write(bytes.subarray(offset));
        break;
      }
    }
  };
  try {
    for (const planned of plan.steps) {
      if (peer.isClosed) break;
      if (planned.step.name === 'auth' && live.agentNonce === undefined) {
        await take((f) => f.kind === 'json', STEP_WAIT_MS, plan.patient ? STEP_WAIT_MS : 200);
      }
      await send(encode(planned, live, input, authMessage));
      if (plan.wait && planned.step.awaits && planned.extra === undefined) {
        await take(
          planned.step.awaits,
          planned.step.waitMs ?? STEP_WAIT_MS,
          plan.patient ? (planned.step.waitMs ?? STEP_WAIT_MS) : QUIET_MS,
        );
      }
    }
    // Whatever else the agent says, until it is quiet.
    const deadline = Date.now() + DRAIN_MS;
    while (!peer.isClosed && Date.now() < deadline) {
      const before = frames.length;
      await take(() => true, QUIET_MS, QUIET_MS / 2);
      if (frames.length === before) break;
    }
  } finally {
    if (peer.isClosed) stats.hungUp++;
    peer.destroy();
  }
  return { frames, closed: peer.isClosed, decodeError: peer.decodeError };
}

/** Everything the agent sends must match the schema a real client parses it with. */
function checkWire(outcome: Outcome): void {
  assert.equal(outcome.decodeError, undefined, `the agent sent bytes that are not a frame`);
  for (const frame of outcome.frames) {
    if (frame.kind === 'binary') {
      const parsed = blobChunkHeaderSchema.safeParse(frame.header);
      assert.ok(parsed.success, `a binary frame with a bad header: ${brief(frame.header)}`);
      continue;
    }
    const m = frame.value as { t?: unknown; code?: unknown };
    const schema =
      m.t === 'challenge' ? challengeSchema : m.t === 'ready' ? readySchema : agentMessageSchema;
    const parsed = schema.safeParse(m);
    assert.ok(parsed.success, `the agent sent a message outside the protocol: ${brief(m)}`);
    assert.notEqual(m.code, 'INTERNAL', `the agent answered INTERNAL: ${brief(m)}`);
  }
}

/** An unmutated session: every request answered as a coordinator expects. */
function checkLegitimate(outcome: Outcome, input: RunInput): void {
  const json = outcome.frames.flatMap((f) =>
    f.kind === 'json' ? [f.value as Record<string, unknown>] : [],
  );
  const errors = json.filter((m) => m.t === 'error');
  assert.deepEqual(errors, [], 'a legitimate session got errors');
  const types = json.map(
    (m) => `${String(m.t)}${m.re === undefined ? '' : `#${JSON.stringify(m.re)}`}`,
  );
  for (const expected of [
    'challenge',
    'ready',
    'pong#1',
    'blobs.need#2',
    'blobs.stored#2',
    'sync.done#3',
    'task.accepted#4',
    'task.done',
    'tasks#5',
    'ack#7',
    'ack#8',
    'pong#9',
  ]) {
    assert.ok(
      types.includes(expected),
      `no ${expected} in a legitimate session: ${types.join(' ')}`,
    );
  }
  const done = json.find((m) => m.t === 'task.done') as {
    result: { status: string; value: unknown };
  };
  assert.equal(done.result.status, 'succeeded', brief(done));
  assert.deepEqual(done.result.value, { run: input.run });
  const chunks = outcome.frames.filter((f) => f.kind === 'binary');
  assert.deepEqual(
    Buffer.concat(chunks.map((f) => (f.kind === 'binary' ? f.data : Buffer.alloc(0)))),
    input.blob,
  );
}

// ---- checkpoints --------------------------------------------------------------------------------

function assertAlive(what: string): void {
  assert.equal(
    agent.process.exitCode ?? agent.process.signalCode,
    null,
    `the agent died ${what}; stderr: ${agent.stderr().slice(-2000)}`,
  );
}

function assertNoErrorLogs(): void {
  const errors = agent.logs.filter((l) => typeof l.level === 'number' && l.level >= 50);
  assert.deepEqual(errors, [], 'the agent logged errors');
}

function assertMemory(what: string, settleMs: number): Promise<number> {
  return expectMemoryBelow(
    agent.process.pid!,
    baselineRss + MEMORY_HEADROOM,
    settleMs,
    `the agent, baseline ${(baselineRss / MiB).toFixed(0)} MiB, ${what}`,
  );
}

/** A well-behaved client: connects, syncs and (with `task`) runs a noop. */
async function legitimateClient(task: string | undefined): Promise<void> {
  const client = await agent.connect({ instanceId: 'legit', requestTimeoutMs: 20_000 });
  try {
    await client.ping();
    if (task === undefined) return;
    await client.sync(bundle);
    const result = await client.runTask({
      taskId: task,
      extension: 'core',
      operation: 'noop',
      input: task,
    });
    assert.equal(result.status, 'succeeded', brief(result));
    assert.equal(result.value, task);
    await client.releaseTask(task);
  } finally {
    client.close();
  }
}

function blobFor(run: number): RunInput {
  const blob = Buffer.from(`fuzz ${bounds.seed} run ${run}\n`.repeat(40 + (run % 50)));
  return { run, blob, sha256: createHash('sha256').update(blob).digest('hex') };
}

/** MUSTER_FUZZ_DEBUG=1: one line per run (time, the agent's memory, what was mutated). */
function debugLine(run: number, ms: number, outcome: Outcome, mutations: Mutation[]): void {
  const rss = ((rssBytes(agent.process.pid!) ?? 0) / MiB).toFixed(0);
  const what = mutations.map((m) =>
    'edits' in m ? `${m.op}:${m.edits.map((e) => e.op).join('/')}` : m.op,
  );
  process.stderr.write(
    `fuzz-agent: run ${run} ${ms} ms, ${rss} MiB${outcome.closed ? ', hung up' : ''}: ${what.join(' ')}\n`,
  );
}

// ---- the test -----------------------------------------------------------------------------------

describe('the agent under a fuzzed coordinator session', () => {
  it('answers requests with impossible ids within the protocol (found by this fuzzer)', async () => {
    // The agent echoed any JSON number as `re`: -1, 1.5, or 1e999 (Infinity, written as null)
    // made error frames that break the protocol's schema, so a real client dropped them unread.
    const peer = await RawPeer.connect({ port: agent.port });
    try {
      await peer.handshake(agent.accessKey, { instanceId: 'regressions' });
      const cases: [Buffer, string][] = [
        [frameOf(1, Buffer.from('{"t":"ping","id":1e999}')), 'INVALID_MESSAGE'],
        [frameOf(1, Buffer.from('{"t":"no.such.type","id":-1}')), 'UNKNOWN_MESSAGE'],
        [frameOf(1, Buffer.from('{"t":"tasks.list","id":1.5}')), 'INVALID_MESSAGE'],
        [
          binaryFrame(
            '{"t":"blob.chunk","re":1e999,"sha256":"00","offset":0,"size":1}',
            Buffer.alloc(1),
          ),
          'INVALID_MESSAGE',
        ],
      ];
      for (const [bytes, code] of cases) {
        peer.write(bytes);
        const answer = await peer.nextJson();
        assert.equal(answer.code, code, brief(answer));
        assert.equal(answer.re, undefined, brief(answer));
        checkWire({
          frames: [{ kind: 'json', value: answer }],
          closed: false,
          decodeError: undefined,
        });
      }
    } finally {
      peer.destroy();
    }
  });

  it('plays the recorded session correctly before any mutation', { timeout: 60_000 }, async () => {
    await legitimateClient('warm-up');
    const input = blobFor(0);
    checkLegitimate(await play(planRun(recordedSession(input), []), input), input);
    baselineRss = rssBytes(agent.process.pid!) ?? 0;
  });

  it(
    'stays up, answers a legitimate client and stays within bounded memory',
    { timeout: 180_000 },
    async () => {
      let runs = 0;
      let mutated = 0;
      const started = Date.now();
      let first: string | undefined;
      await runFuzz(
        'fuzz-agent',
        fc.asyncProperty(fc.array(mutation, { maxLength: 4 }), async (mutations) => {
          assertAlive('before the run');
          const input = blobFor(++runs);
          const plan = planRun(recordedSession(input), mutations);
          try {
            const t0 = Date.now();
            const outcome = await play(plan, input);
            if (process.env.MUSTER_FUZZ_DEBUG) debugLine(runs, Date.now() - t0, outcome, mutations);
            checkWire(outcome);
            if (mutations.length === 0) checkLegitimate(outcome, input);
            else mutated++;
            assertAlive('during the run');
            if (runs % CHECK_EVERY === 0) {
              await assertMemory(`after ${runs} runs`, 5000);
              await legitimateClient(undefined);
              assertNoErrorLogs();
            }
          } catch (err) {
            // fast-check shrinks from here; the first failure is worth reading too.
            if (first === undefined) {
              first = `run ${runs}: ${brief(mutations, 2000)}: ${String(err)}`;
              process.stderr.write(`fuzz-agent: first failure: ${first}\n`);
            }
            throw err;
          }
        }),
        bounds,
      );
      const seconds = ((Date.now() - started) / 1000).toFixed(1);
      process.stderr.write(
        `fuzz-agent: ${runs} runs (${mutated} mutated) in ${seconds} s; the agent hung up on ${stats.hungUp}; ${stats.waitsRunOut} waits for an answer ran out\n`,
      );
      assertAlive('after the runs');
      await legitimateClient('final-noop');
      const rss = await assertMemory(`after ${runs} runs`, 15_000);
      process.stderr.write(
        `fuzz-agent: agent memory ${(baselineRss / MiB).toFixed(0)} MiB -> ${(rss / MiB).toFixed(0)} MiB\n`,
      );
      assertNoErrorLogs();
    },
  );
});
