/**
 * Agents that dial out (issue 14): what both ends of the outbound link agree on. The agent opens a
 * WebSocket to the coordinator's HTTPS port (AGENT_CONNECT_PATH); once it is open, the agent
 * protocol runs over it unchanged, the coordinator still the protocol's client: hello, the
 * mutual proof of a key (bound to the TLS session under the WebSocket, so the proof cannot be
 * relayed), the instance claim, leases, tasks.
 *
 * The key of an agent that dials out is its own: derived at join from the join token's secret
 * and the agent's id (joinKey), so the secret never crosses the wire (the upgrade names only the
 * token's id) and a proof made with it tells each side the other holds the token.
 */
import { createHmac, randomBytes } from 'node:crypto';
import { z } from 'zod';

export const AGENT_CONNECT_PATH = '/api/v1/agents/connect';

/** Request headers of the upgrade (lower case, as Node reports them). */
export const AGENT_ID_HEADER = 'muster-agent-id';
export const JOIN_TOKEN_HEADER = 'muster-join-token';
export const AGENT_FACTS_HEADER = 'muster-agent-facts';
/** Response header of the upgrade: the other coordinators of the cluster, as a JSON array. */
export const PEERS_HEADER = 'muster-peers';

/** The facts header's size bound: it is read before the peer has proven anything. */
export const MAX_FACTS_BYTES = 4096;
export const MAX_PEERS = 4;

/**
 * How a coordinator ends an outbound link, as WebSocket close codes (4000-4999 are the
 * application's): the agent reads them to say why and to choose when to dial again.
 */
export const OutboundClose = {
  /** The agent proved its key but an admin has not approved it yet. */
  pending: 4001,
  /** The cluster's other coordinators changed: dial again to learn them. */
  peersChanged: 4002,
  /** This coordinator does not run the cluster now (a backup standing by): try the others. */
  notActive: 4003,
  /** No agent with this id, and no join token that admits it (removed, expired, revoked). */
  unknownAgent: 4004,
  /** The coordinator is stopping. */
  shuttingDown: 4005,
} as const;

/** What an agent says of its machine at each connect: the coordinator's automatic labels. */
export const agentFactsSchema = z
  .object({
    hostname: z.string().min(1).max(253),
    // Node's names only (os.platform(), os.arch()): they become labels plans route work by.
    os: z.enum([
      'aix',
      'android',
      'cygwin',
      'darwin',
      'freebsd',
      'haiku',
      'linux',
      'netbsd',
      'openbsd',
      'sunos',
      'win32',
    ]),
    arch: z.enum([
      'arm',
      'arm64',
      'ia32',
      'loong64',
      'mips',
      'mipsel',
      'ppc',
      'ppc64',
      'riscv64',
      's390',
      's390x',
      'x64',
    ]),
    cores: z.number().int().min(1).max(65_536),
    memoryBytes: z
      .number()
      .int()
      .nonnegative()
      .max(2 ** 53 - 1),
    /** Compiler drivers found on PATH, as name-majorversion (gcc-12, clang-16). */
    compilers: z
      .array(z.string().regex(/^(gcc|clang)-\d{1,3}$/))
      .max(16)
      .default([]),
    agentVersion: z.string().min(1).max(64),
  })
  .strip();
export type AgentFacts = z.infer<typeof agentFactsSchema>;

export const agentIdSchema = z.string().uuid();

export const peersSchema = z.array(z.string().url().max(512)).max(MAX_PEERS);

/** A join token as users hold it: `mjt_<id>_<secret>`; the id names it, the secret is the key. */
export interface JoinToken {
  id: string;
  secret: string;
}

const TOKEN_PATTERN = /^mjt_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$/;
export const joinTokenIdSchema = z.string().regex(/^[0-9a-f]{16}$/);

export function newJoinToken(): JoinToken & { token: string } {
  const id = randomBytes(8).toString('hex');
  const secret = randomBytes(32).toString('base64url');
  return { id, secret, token: formatJoinToken({ id, secret }) };
}

export function formatJoinToken(token: JoinToken): string {
  return `mjt_${token.id}_${token.secret}`;
}

export function parseJoinToken(text: string): JoinToken | undefined {
  const match = TOKEN_PATTERN.exec(text.trim());
  return match ? { id: match[1]!, secret: match[2]! } : undefined;
}

/** The key an agent that joined with this token shares with its coordinator. */
export function joinKey(secret: string, agentId: string): string {
  return createHmac('sha256', secret).update(`muster-join-v1\0${agentId}`).digest('hex');
}
