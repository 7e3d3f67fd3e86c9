/**
 * A light simulated agent, for the "many connected agents" benchmark: one Node process listening
 * on one port, where every accepted connection behaves, as far as a coordinator at rest can tell,
 * like a separate `muster agent` — so thousands of agents can be registered at one address.
 *
 *   node dist/bench/sim-agent.js --access-key KEY [--listen 127.0.0.1:0] [--tls]
 *
 * It speaks the real meta layer (src/protocol/: framing, hello -> challenge -> auth -> ready with
 * the HMAC proofs and, on TLS, the channel binding), then answers only what a coordinator sends
 * an idle agent: `sync.offer` with `sync.done` at once (it pretends the version is materialised),
 * `ping` with `pong`, `lease.acquire` (a coordinator's heartbeat under a cluster lease) with the
 * lease granted, `tasks.list` with no tasks, `task.release` with `ack`; anything else with an
 * error. It runs no tasks.
 *
 * Prints one JSON line `{"msg":"listening","port":N,"fingerprint":F?}` on stdout when ready. Each
 * line "stats" on stdin is answered with a JSON line of counters. It exits when stdin closes, so
 * it never outlives the benchmark that started it.
 */
import { randomUUID, X509Certificate } from 'node:crypto';
import { createServer as createTcpServer, type Server, type Socket } from 'node:net';
import { createInterface } from 'node:readline';
import { createServer as createTlsServer } from 'node:tls';
import { selfSignedCertificate } from '../src/common/self-signed.js';
import { FramedConnection } from '../src/protocol/connection.js';
import type { Frame } from '../src/protocol/framing.js';
import {
  agentProof,
  channelBinding,
  clientProof,
  negotiateProtocol,
  newNonce,
  proofsEqual,
  verifyClaim,
} from '../src/protocol/handshake.js';
import { versionIdOf, type Manifest } from '../src/protocol/manifest.js';
import {
  authSchema,
  helloSchema,
  PROTOCOL_MAX,
  PROTOCOL_MIN,
  type AgentWireMessage,
  type Hello,
} from '../src/protocol/messages.js';

interface Options {
  host: string;
  port: number;
  accessKey: string;
  tls: boolean;
}

function parseOptions(argv: string[]): Options {
  const options: Options = { host: '127.0.0.1', port: 0, accessKey: '', tls: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--tls') options.tls = true;
    else if (arg === '--access-key') options.accessKey = argv[++i] ?? '';
    else if (arg === '--listen') {
      const value = argv[++i] ?? '';
      const colon = value.lastIndexOf(':');
      options.host = value.slice(0, colon);
      options.port = Number(value.slice(colon + 1));
    } else {
      process.stderr.write(`sim-agent: unknown argument ${arg}\n`);
      process.exit(2);
    }
  }
  if (options.accessKey.length < 16) {
    process.stderr.write('sim-agent: --access-key KEY (16 characters or more) is required\n');
    process.exit(2);
  }
  return options;
}

/** The lease a real agent grants lasts 15 s between renewals by default. */
const LEASE_TTL_MS = 15_000;
const MAX_FRAME_BYTES = 4 * 1024 * 1024;
const AGENT_VERSION = '0.1.0-sim';

const stats = {
  accepted: 0,
  open: 0,
  ready: 0,
  authFailures: 0,
  syncs: 0,
  pings: 0,
  taskLists: 0,
  other: 0,
};

/** Version ids of the manifests offered so far, by their JSON (every coordinator sends one). */
const versionIds = new Map<string, string>();

class SimSession {
  private state: 'hello' | 'auth' | 'ready' = 'hello';
  private hello: Hello | undefined;
  private agentNonce = '';
  private readonly conn: FramedConnection<AgentWireMessage>;

  constructor(
    socket: Socket,
    private readonly options: Options,
    private readonly agentId: string,
  ) {
    stats.accepted++;
    stats.open++;
    socket.setNoDelay(true);
    this.conn = new FramedConnection<AgentWireMessage>(
      socket,
      {
        onFrame: (frame) => this.onFrame(frame),
        onClose: () => {
          stats.open--;
          if (this.state === 'ready') stats.ready--;
        },
      },
      MAX_FRAME_BYTES,
    );
  }

  private onFrame(frame: Frame): void {
    if (frame.kind !== 'json') return this.fail('UNEXPECTED_MESSAGE', 'binary frame');
    const message = frame.value as { t?: unknown; id?: unknown } | null;
    if (this.state === 'hello') return this.onHello(message);
    if (this.state === 'auth') return this.onAuth(message);
    this.onRequest(message);
  }

  private onHello(message: unknown): void {
    const parsed = helloSchema.safeParse(message);
    if (!parsed.success) return this.fail('UNEXPECTED_MESSAGE', 'expected "hello"');
    const protocol = negotiateProtocol(parsed.data.protocol, {
      min: PROTOCOL_MIN,
      max: PROTOCOL_MAX,
    });
    if (protocol === undefined) return this.fail('UNSUPPORTED_PROTOCOL', 'no common protocol');
    this.hello = parsed.data;
    this.agentNonce = newNonce();
    this.state = 'auth';
    this.conn.sendJson({
      t: 'challenge',
      protocol,
      agentId: this.agentId,
      agentVersion: AGENT_VERSION,
      nonce: this.agentNonce,
    });
  }

  private onAuth(message: unknown): void {
    const parsed = authSchema.safeParse(message);
    if (!parsed.success) return this.fail('UNEXPECTED_MESSAGE', 'expected "auth"');
    const hello = this.hello!;
    const expected = clientProof(
      this.options.accessKey,
      hello.nonce,
      this.agentNonce,
      channelBinding(this.conn.socket),
    );
    if (!proofsEqual(parsed.data.proof, expected)) {
      stats.authFailures++;
      return this.fail('AUTH_FAILED', 'wrong access key');
    }
    // The claim's signature is checked like a real agent does (its cost is part of a connect).
    const claim = parsed.data.claim;
    if (
      hello.instanceId !== undefined &&
      (claim === undefined ||
        !verifyClaim(claim.publicKey, claim.signature, {
          product: hello.product,
          instanceId: hello.instanceId,
          clusterId: hello.clusterId,
          clientNonce: hello.nonce,
          agentNonce: this.agentNonce,
          binding: channelBinding(this.conn.socket),
        }))
    ) {
      stats.authFailures++;
      return this.fail('INSTANCE_CLAIM_INVALID', 'no valid instance claim');
    }
    this.state = 'ready';
    stats.ready++;
    const key = `${hello.product}/${hello.instanceId ?? 'ip'}`;
    this.conn.sendJson({
      t: 'ready',
      proof: agentProof(
        this.options.accessKey,
        hello.nonce,
        this.agentNonce,
        channelBinding(this.conn.socket),
      ),
      instance: { key, product: hello.product, dir: 'sim' },
      limits: { maxFrameBytes: MAX_FRAME_BYTES },
      capacity: { cores: 1 },
      // Like a real agent with one coordinator per cluster: the lease is always granted.
      ...(hello.clusterId !== undefined && hello.leaseTerm !== undefined
        ? { lease: { held: true, term: hello.leaseTerm, expiresInMs: LEASE_TTL_MS } }
        : {}),
    });
  }

  private onRequest(message: { t?: unknown; id?: unknown } | null): void {
    const re = typeof message?.id === 'number' ? message.id : undefined;
    if (re === undefined) return this.fail('INVALID_MESSAGE', 'a request without an id');
    switch (message?.t) {
      case 'ping':
        stats.pings++;
        this.conn.sendJson({ t: 'pong', re });
        return;
      case 'lease.acquire': {
        // The heartbeat of a coordinator that works under a cluster lease.
        stats.pings++;
        const term = (message as { term?: unknown }).term;
        this.conn.sendJson({
          t: 'lease',
          re,
          held: true,
          term: typeof term === 'number' ? term : 0,
          expiresInMs: LEASE_TTL_MS,
        });
        return;
      }
      case 'sync.offer': {
        stats.syncs++;
        const manifest = (message as { manifest?: Manifest }).manifest;
        const json = JSON.stringify(manifest);
        let versionId = versionIds.get(json);
        if (versionId === undefined) {
          versionId = versionIdOf(manifest!);
          versionIds.set(json, versionId);
        }
        this.conn.sendJson({ t: 'sync.done', re, versionId, receivedBlobs: 0, receivedBytes: 0 });
        return;
      }
      case 'tasks.list':
        stats.taskLists++;
        this.conn.sendJson({ t: 'tasks', re, tasks: [] });
        return;
      case 'task.release':
        stats.other++;
        this.conn.sendJson({ t: 'ack', re });
        return;
      default:
        stats.other++;
        this.conn.sendJson({
          t: 'error',
          re,
          code: 'UNKNOWN_MESSAGE',
          message: `the simulated agent does not do ${String(message?.t)}`,
        });
    }
  }

  private fail(code: string, message: string): void {
    this.conn.sendJson({ t: 'error', code, message });
    this.conn.close();
  }
}

function selfSigned(): Promise<{ cert: string; key: string }> {
  return selfSignedCertificate({
    commonName: 'muster-sim-agent',
    ips: ['127.0.0.1'],
    notAfter: new Date(Date.now() + 86_400_000),
  });
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  const agentId = randomUUID();
  const onConnection = (socket: Socket): void => {
    new SimSession(socket, options, agentId);
  };
  let server: Server;
  let fingerprint: string | undefined;
  if (options.tls) {
    const { cert, key } = await selfSigned();
    fingerprint = new X509Certificate(cert).fingerprint256;
    server = createTlsServer({ cert, key, minVersion: 'TLSv1.2' }, onConnection);
    server.on('tlsClientError', () => undefined);
  } else {
    server = createTcpServer(onConnection);
  }
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: options.host, port: options.port, backlog: 4096 }, () => resolve());
  });
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  process.stdout.write(
    `${JSON.stringify({ msg: 'listening', port, ...(fingerprint ? { fingerprint } : {}) })}\n`,
  );
  const input = createInterface({ input: process.stdin });
  input.on('line', (line) => {
    if (line.trim() === 'stats')
      process.stdout.write(`${JSON.stringify({ msg: 'stats', ...stats })}\n`);
  });
  input.on('close', () => process.exit(0));
}

await main();
