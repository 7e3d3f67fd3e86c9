/**
 * The coordinator's end of agents that dial out (src/protocol/outbound.ts): the HTTPS server's
 * upgrade requests on AGENT_CONNECT_PATH. An upgrade is answered only for an agent this
 * coordinator knows by its id, or one that names a join token that is valid now, and only while
 * this coordinator runs the cluster (a backup standing by answers 503, so the agent tries the
 * others). Then the WebSocket is framed and the usual handshake runs over it, the proofs bound to
 * the TLS session under it; an agent that proved the key is attached to its pool connection, a
 * new one is recorded first (pending, unless its token approves), an unapproved one is told so.
 *
 * Strangers hold little: the facts header is bounded, upgrades still in their handshake are
 * capped in all and per address (ConnectionGate), and each WebSocket message is bounded by the
 * frame limit.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import { WebSocketServer, createWebSocketStream, type WebSocket } from 'ws';
import { ConnectionGate, type GateTicket } from '../../common/connection-gate.js';
import { openAgentLinkOver, type AgentLink } from '../../protocol/client/agent-link.js';
import { MusterError, toMusterError, type ErrorCode } from '../../protocol/errors.js';
import { DEFAULT_MAX_FRAME_BYTES } from '../../protocol/framing.js';
import { channelBinding } from '../../protocol/handshake.js';
import {
  AGENT_CONNECT_PATH,
  AGENT_FACTS_HEADER,
  AGENT_ID_HEADER,
  agentFactsSchema,
  agentIdSchema,
  JOIN_TOKEN_HEADER,
  joinKey,
  joinTokenIdSchema,
  MAX_FACTS_BYTES,
  OutboundClose,
  PEERS_HEADER,
  type AgentFacts,
} from '../../protocol/outbound.js';
import type { Store } from '../store/store.js';
import type { AgentRow } from '../store/types.js';
import { clientOptionsFor } from './agent-connection.js';
import { RESERVED_AGENT_NAMES } from '../../api/requests.js';
import { relabel } from './agent-labels.js';
import type { AgentPool } from './pool.js';

export interface OutboundAgentsContext {
  store: Pick<
    Store,
    'getAgentByAgentId' | 'getAgent' | 'addAgent' | 'updateAgent' | 'joinTokens' | 'audit'
  > & { transaction<T>(fn: () => T): T };
  /** The running pool; undefined while this coordinator does not run the cluster. */
  pool(): AgentPool | undefined;
  /** Where the cluster's other coordinators are (a primary's selected backup, a backup's primary). */
  peers(): string[];
  log: Logger;
  maxFrameBytes?: number;
}

/** Upgrades that have not completed their handshake: in all, and per source address. */
const LIMITS = { maxTotal: 32, maxPerAddress: 4 };
const PEERS_CHECK_MS = 2000;
/** A refused upgrade's socket is destroyed at the latest this long after its answer. */
const REFUSED_LINGER_MS = 5000;

interface Admitted {
  agentId: string;
  facts: AgentFacts;
  row: AgentRow | undefined;
  token: string | undefined;
  accessKey: string;
  address: string;
}

export class OutboundAgents {
  private readonly wss: WebSocketServer;
  private readonly gate = new ConnectionGate(LIMITS);
  /** Open links, with the peers each was told at its upgrade. */
  private readonly sockets = new Map<WebSocket, string>();
  private readonly peersCheck: NodeJS.Timeout;
  private stopped = false;

  constructor(private readonly ctx: OutboundAgentsContext) {
    this.wss = new WebSocketServer({
      noServer: true,
      perMessageDeflate: false,
      // One frame per message (connection.ts writes a frame's prefix and body separately).
      maxPayload: (ctx.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES) + 64 * 1024,
      clientTracking: false,
    });
    // A link told of other peers than the cluster has now (a backup selected, or another one)
    // is closed with peersChanged: the agent dials again at once and learns them.
    this.peersCheck = setInterval(() => this.checkPeers(), PEERS_CHECK_MS);
    this.peersCheck.unref();
  }

  private checkPeers(): void {
    if (this.sockets.size === 0) return;
    const now = JSON.stringify(this.ctx.peers());
    for (const [ws, told] of this.sockets)
      if (told !== now) {
        this.sockets.set(ws, now);
        ws.close(OutboundClose.peersChanged, 'the cluster changed: dial again');
      }
  }

  /** The HTTP server's 'upgrade' event. Never throws: a bad request is answered and closed. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', () => undefined);
    const path = (req.url ?? '').split('?')[0];
    if (path !== AGENT_CONNECT_PATH) return refuse(socket, 404, 'NOT_FOUND', 'no such upgrade');
    if (this.stopped)
      return refuse(socket, 503, 'AGENT_SHUTTING_DOWN', 'the coordinator is stopping');
    const admitted = this.check(req, socket);
    if (admitted === undefined) return;
    const admission = this.gate.admit(admitted.address, () => socket.destroy());
    if ('refused' in admission)
      return refuse(socket, 503, 'RATE_LIMITED', 'too many agents connecting from this address');
    const ticket = admission.admitted;
    socket.once('close', () => ticket.release());
    const peers = JSON.stringify(this.ctx.peers());
    const addPeers = (headers: string[]): void => {
      headers.push(`${PEERS_HEADER}: ${peers}`);
    };
    this.wss.once('headers', addPeers);
    try {
      this.wss.handleUpgrade(req, socket, head, (ws) => {
        void this.onOpen(ws, req, admitted, ticket, peers);
      });
    } finally {
      this.wss.off('headers', addPeers);
    }
  }

  /** Closes every link (the coordinator stops, or stops running the cluster). */
  closeAll(code: number = OutboundClose.shuttingDown): void {
    for (const ws of this.sockets.keys())
      ws.close(code, 'the coordinator stops running the cluster');
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.peersCheck);
    this.closeAll();
    this.gate.evictAll();
    for (const ws of this.sockets.keys()) ws.terminate();
    this.wss.close();
  }

  /** Whom the upgrade is from, and the key to prove; undefined when refused (answered). */
  private check(req: IncomingMessage, socket: Duplex): Admitted | undefined {
    if (this.ctx.pool() === undefined) {
      refuse(
        socket,
        503,
        'STANDBY',
        'this coordinator does not run the cluster now (a backup standing by)',
      );
      return undefined;
    }
    const agentId = agentIdSchema.safeParse(req.headers[AGENT_ID_HEADER]);
    if (!agentId.success) {
      refuse(
        socket,
        400,
        'VALIDATION_FAILED',
        `the ${AGENT_ID_HEADER} header must be the agent's id (a UUID)`,
      );
      return undefined;
    }
    const rawFacts = req.headers[AGENT_FACTS_HEADER];
    let facts: AgentFacts | undefined;
    if (typeof rawFacts === 'string' && rawFacts.length <= MAX_FACTS_BYTES) {
      try {
        const parsed = agentFactsSchema.safeParse(JSON.parse(rawFacts));
        if (parsed.success) facts = parsed.data;
      } catch {
        // refused below
      }
    }
    if (facts === undefined) {
      refuse(
        socket,
        400,
        'VALIDATION_FAILED',
        `the ${AGENT_FACTS_HEADER} header must describe the agent's machine`,
      );
      return undefined;
    }
    const address = req.socket.remoteAddress ?? 'unknown';
    const row = this.ctx.store.getAgentByAgentId(agentId.data);
    if (row !== undefined) {
      return {
        agentId: agentId.data,
        facts,
        row,
        token: undefined,
        accessKey: row.accessKey,
        address,
      };
    }
    const tokenId = joinTokenIdSchema.safeParse(req.headers[JOIN_TOKEN_HEADER]);
    const token = tokenId.success ? this.ctx.store.joinTokens.valid(tokenId.data) : undefined;
    if (token === undefined) {
      refuse(
        socket,
        403,
        'AUTH_FAILED',
        tokenId.success
          ? 'the join token is unknown, expired or revoked: ask an admin for a new one'
          : 'this coordinator does not know the agent: start it with --join-token',
      );
      return undefined;
    }
    return {
      agentId: agentId.data,
      facts,
      row: undefined,
      token: token.id,
      accessKey: joinKey(token.secret, agentId.data),
      address,
    };
  }

  private async onOpen(
    ws: WebSocket,
    req: IncomingMessage,
    admitted: Admitted,
    ticket: GateTicket,
    peers: string,
  ): Promise<void> {
    this.sockets.set(ws, peers);
    ws.on('error', () => undefined);
    ws.once('close', () => this.sockets.delete(ws));
    const pool = this.ctx.pool();
    if (pool === undefined || this.stopped) {
      ws.close(OutboundClose.notActive, 'this coordinator does not run the cluster now');
      return;
    }
    const stream = createWebSocketStream(ws);
    stream.on('error', () => undefined);
    // Keying material of the TLS session the WebSocket runs on: a proof cannot be relayed.
    const binding = req.socket instanceof TLSSocket ? channelBinding(req.socket) : '';
    const options = clientOptionsFor(pool.identity(), {
      host: admitted.address,
      port: 0,
      accessKey: admitted.accessKey,
      tls: false,
    });
    let link: AgentLink;
    try {
      link = await openAgentLinkOver(stream, binding, options);
    } catch (err) {
      const error = toMusterError(err);
      // DUPLICATE_LINK: the agent has a link to this coordinator at another of its URLs already.
      this.ctx.log[error.code === 'DUPLICATE_LINK' ? 'info' : 'warn'](
        { agentId: admitted.agentId, peer: admitted.address, code: error.code },
        `an agent that dials out failed its handshake: ${error.message}`,
      );
      ws.terminate();
      return;
    } finally {
      ticket.release();
    }
    try {
      // Read again: an admin may have changed or removed it during the handshake.
      const known = this.ctx.store.getAgentByAgentId(admitted.agentId);
      if (admitted.row !== undefined && known === undefined)
        throw new MusterError('NOT_FOUND', 'the agent was removed on the coordinator');
      const row = known ?? this.join(admitted, binding !== '', link.hello.rekeyed);
      const current = this.refresh(row, admitted);
      if (!current.approved) {
        ws.close(OutboundClose.pending, 'waiting for an admin to approve this agent');
        link.conn.close();
        return;
      }
      const running = this.ctx.pool();
      const connection = running?.get(current.name) ?? running?.add(current);
      if (connection === undefined) {
        ws.close(OutboundClose.notActive, 'this coordinator does not run the cluster now');
        return;
      }
      connection.row = current;
      await connection.attach(link, options);
    } catch (err) {
      const error = toMusterError(err);
      this.ctx.log.warn(
        { agentId: admitted.agentId, code: error.code },
        `could not take an agent that dials out: ${error.message}`,
      );
      ws.close(OutboundClose.unknownAgent, error.message.slice(0, 120));
    }
  }

  /**
   * A new agent proved its token: recorded (pending unless the token approves), audited, under
   * the key this handshake made (`rekeyed`), which the agent takes too: the token's own key opens
   * nothing once the agent joined.
   */
  private join(admitted: Admitted, tls: boolean, rekeyed: string): AgentRow {
    const tokenId = admitted.token;
    if (tokenId === undefined) throw new MusterError('NOT_FOUND', 'no join token');
    const { store } = this.ctx;
    const row = store.transaction(() => {
      const token = store.joinTokens.valid(tokenId);
      if (token === undefined)
        throw new MusterError('NOT_FOUND', 'the join token expired or was revoked meanwhile');
      if (store.getAgentByAgentId(admitted.agentId) !== undefined)
        throw new MusterError('CONFLICT', 'the agent joined meanwhile on another link');
      const added = store.addAgent({
        name: this.freeName(admitted.facts.hostname),
        host: admitted.address,
        port: 0,
        accessKey: rekeyed,
        fingerprint: null,
        tls,
        labels: relabel(token.labels, null, admitted.facts),
        slots: null,
        agentId: admitted.agentId,
        approved: token.autoApprove,
        facts: admitted.facts,
      });
      store.joinTokens.noteUse(token.id);
      store.audit.record({
        actor: `join token ${token.id}`,
        actorKind: 'system',
        ip: admitted.address,
        action: 'agent.join',
        target: added.name,
        details: {
          agentId: admitted.agentId,
          token: token.id,
          approved: token.autoApprove,
          labels: added.labels,
        },
      });
      return added;
    });
    this.ctx.log.info(
      { agent: row.name, agentId: row.agentId, approved: row.approved, peer: admitted.address },
      row.approved ? 'agent joined (approved by its token)' : 'agent joined: waiting for approval',
    );
    this.ctx.pool()?.add(row);
    return row;
  }

  /** Its facts, automatic labels and address as of this connect. */
  private refresh(row: AgentRow, admitted: Admitted): AgentRow {
    const labels = relabel(row.labels, row.facts, admitted.facts);
    const same =
      JSON.stringify(row.facts) === JSON.stringify(admitted.facts) &&
      row.host === admitted.address &&
      labels.join('\n') === row.labels.join('\n');
    if (same) return row;
    const updated = this.ctx.store.updateAgent(row.name, {
      facts: admitted.facts,
      host: admitted.address,
      labels,
    });
    this.ctx.pool()?.update(updated);
    return updated;
  }

  /** The agent's host name as a pool name, made unique (`build-1`, `build-1-2`, …). */
  private freeName(hostname: string): string {
    const base =
      hostname
        .toLowerCase()
        .replace(/[^a-z0-9._-]+/g, '-')
        .replace(/^[^a-z0-9]+/, '')
        .slice(0, 56) || 'agent';
    const free = (name: string): boolean =>
      !RESERVED_AGENT_NAMES.has(name) && this.ctx.store.getAgent(name) === undefined;
    if (free(base)) return base;
    for (let n = 2; ; n++) {
      const name = `${base}-${n}`;
      if (free(name)) return name;
    }
  }
}

/** Answers an upgrade request with a plain HTTP error and closes (whether or not the peer does). */
function refuse(socket: Duplex, status: number, code: ErrorCode, message: string): void {
  const body = JSON.stringify({ code, message });
  // The HTTP server's timeouts no longer cover an upgraded socket: it is destroyed here.
  socket.once('finish', () => socket.destroy());
  setTimeout(() => socket.destroy(), REFUSED_LINGER_MS).unref();
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? 'Error'}\r\nContent-Type: application/json\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}

const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request',
  403: 'Forbidden',
  404: 'Not Found',
  503: 'Service Unavailable',
};
