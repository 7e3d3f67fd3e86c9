/**
 * Dialing out (src/protocol/outbound.ts): with --connect URL the agent opens a WebSocket to the
 * coordinator's HTTPS port and to each other coordinator of its cluster it learned (the selected
 * backup, the primary), and serves the agent protocol over each, exactly as over a connection it
 * accepted: instances, leases, pushed files and tasks do not know the difference. A link that
 * drops is dialed again with backoff; a coordinator that does not run the cluster now (a backup
 * standing by) answers 503 and is asked again every few seconds, so a takeover finds the agents
 * at once; the lease decides which coordinator drives them.
 *
 * The key: the first time, derived from the join token and this agent's id (the token's secret
 * never crosses the wire). The handshake that joins makes a new one of it (rekey in
 * protocol/handshake.ts: mixed with that handshake's nonces and TLS binding), which the
 * coordinator records and both use from then on, so a token that leaks later opens no agent
 * that joined with it. Kept in <data>/outbound.json (0600) with the peers learned, so a restart
 * needs no token; the token-derived key is kept beside it (and the token's id named at each
 * dial) only until a handshake with the new key confirms the coordinator has it.
 *
 * TLS under the WebSocket is not where trust comes from: the coordinator must prove the key
 * over the TLS session's keying material before this agent says or runs anything, so a man in
 * the middle with any certificate gets no further than the handshake.
 */
import { readFile } from 'node:fs/promises';
import type { IncomingMessage } from 'node:http';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import { WebSocket, createWebSocketStream } from 'ws';
import { z } from 'zod';
import { writeAtomic } from '../common/atomic-file.js';
import { MusterError } from '../protocol/errors.js';
import { channelBinding } from '../protocol/handshake.js';
import {
  AGENT_CONNECT_PATH,
  AGENT_FACTS_HEADER,
  AGENT_ID_HEADER,
  JOIN_TOKEN_HEADER,
  joinKey,
  joinTokenIdSchema,
  MAX_PEERS,
  OutboundClose,
  parseJoinToken,
  PEERS_HEADER,
  peersSchema,
  type AgentFacts,
  type JoinToken,
} from '../protocol/outbound.js';
import { LogLimiters } from './log-limiter.js';

export interface OutboundContext {
  url: string;
  joinToken: JoinToken | undefined;
  joinTokenFile: string | undefined;
  dataDir: string;
  agentId: string;
  facts: AgentFacts;
  maxFrameBytes: number;
  log: Logger;
  /**
   * A link that brings nothing for this long (no frame, no answer to the agent's WebSocket
   * pings, sent every third of it) is closed and dialed again: a NAT mapping or a path that
   * dropped it without a close would otherwise hold it half-open for ever. Default 30 s.
   */
  linkSilentMs?: number;
  /**
   * Serves the agent protocol on an open link; `authenticated` runs once the coordinator proved
   * the key, `closed` when the session ends.
   */
  serve(link: OutboundLink): void;
}

export interface OutboundLink {
  stream: Duplex & { remoteAddress?: string; remotePort?: number };
  /** The keys the coordinator may prove: the current one, and the join key until confirmed. */
  accessKeys: readonly string[];
  binding: string;
  /**
   * The coordinator proved `accessKey`; `rekeyed` is what this handshake makes of it. False: the
   * agent has a link to that coordinator (`holderId`) through another URL already; this one goes.
   */
  authenticated(accessKey: string, rekeyed: string, holderId: string | undefined): boolean;
}

const key = z.string().regex(/^[0-9a-f]{64}$/);
const stateSchema = z.object({
  connect: z.string(),
  /** The key made at the join (null until it joined). */
  accessKey: key.nullable(),
  /** The key derived from the join token, until a handshake with accessKey confirmed it. */
  joinKey: key.nullable(),
  /** That token's id, named at each dial while joinKey is kept. */
  joinTokenId: joinTokenIdSchema.nullable(),
  peers: peersSchema,
});
type OutboundState = z.infer<typeof stateSchema>;

/** Delays between dials: doubling from 1 s to 30 s, with jitter; a standing-by backup: 3 s. */
const BACKOFF = { firstMs: 1000, maxMs: 30_000 };
const STANDBY_RETRY_MS = 3000;
const PENDING_RETRY_MS = 5000;
const REFUSED_RETRY_MS = 60_000;
/**
 * A URL that reached a coordinator linked already at another URL: dialed again when that link
 * closes (linkFreed), else this often.
 */
const DUPLICATE_RETRY_MS = 5 * 60_000;
const LINK_SILENT_MS = 30_000;

export class OutboundLinks {
  private readonly dialers = new Map<string, Dialer>();
  /**
   * The URL of the link to each coordinator (its hello's holderId): one coordinator reachable
   * at two URLs (an agent's --connect and a backup's --backup-of spelling it differently) gets
   * one link, not two replacing each other on its side.
   */
  private readonly linkedAt = new Map<string, { url: string; link: object }>();
  private state: OutboundState | undefined;
  /**
   * The join token's id, named at each dial only while this agent's join is not confirmed: an
   * agent removed on the coordinator does not join again by itself.
   */
  get tokenId(): string | undefined {
    return this.state?.joinTokenId ?? undefined;
  }
  private stopped = false;
  readonly log: LogLimiters;

  constructor(readonly ctx: OutboundContext) {
    this.log = new LogLimiters(ctx.log);
  }

  private get stateFile(): string {
    return join(this.ctx.dataDir, 'outbound.json');
  }

  /** The key to prove and the token to name, from the state kept or the join token. */
  async start(): Promise<void> {
    const saved = await this.loadState();
    const token = this.ctx.joinToken ?? (await this.readTokenFile());
    if (saved !== undefined) this.state = saved;
    else if (token !== undefined)
      this.state = {
        connect: this.ctx.url,
        accessKey: null,
        joinKey: joinKey(token.secret, this.ctx.agentId),
        joinTokenId: token.id,
        peers: [],
      };
    else
      throw new MusterError(
        'INVALID_CONFIG',
        `this agent has not joined ${this.ctx.url} yet: give it --join-token (muster agents tokens create)`,
      );
    const joined = this.state.accessKey !== null;
    this.ctx.log.info(
      { coordinator: this.ctx.url, joined },
      joined
        ? 'dialing out to the coordinator'
        : 'dialing out to the coordinator to join it with the token',
    );
    for (const url of [this.ctx.url, ...(this.state?.peers ?? [])]) this.dial(url);
  }

  /**
   * Whether `link`, which `url` made to coordinator `holderId`, may stay: the agent has no other
   * link to it. (A coordinator of an older version says no holder id: always kept.)
   */
  claim(url: string, holderId: string | undefined, link: object): boolean {
    if (holderId === undefined) return true;
    const held = this.linkedAt.get(holderId);
    if (held !== undefined && held.link !== link) return false;
    this.linkedAt.set(holderId, { url, link });
    return true;
  }

  /** `link` to `holderId` closed: a URL that waits behind it is dialed now. */
  release(holderId: string, link: object): void {
    if (this.linkedAt.get(holderId)?.link !== link) return;
    this.linkedAt.delete(holderId);
    for (const dialer of this.dialers.values()) dialer.linkFreed(holderId);
  }

  /** The URL of the link to `holderId`, if there is one. */
  linkedUrl(holderId: string): string | undefined {
    return this.linkedAt.get(holderId)?.url;
  }

  /** The keys a coordinator may prove now. */
  get accessKeys(): string[] {
    const state = this.state;
    if (state === undefined) return [];
    return [state.accessKey, state.joinKey].filter((k): k is string => k !== null);
  }

  /** The coordinators it dials now. */
  get urls(): string[] {
    return [...this.dialers.keys()];
  }

  /** Dials no more; open links stay until their sessions close (a drain reports its tasks). */
  stop(): void {
    this.stopped = true;
    for (const dialer of this.dialers.values()) dialer.stop();
    this.dialers.clear();
  }

  get isStopped(): boolean {
    return this.stopped;
  }

  /**
   * The coordinator at `from` proved `accessKey` and named its peers: the key the join made is
   * taken (or, proved, confirmed), and each peer is dialed.
   */
  async joined(
    from: string,
    peers: string[] | undefined,
    accessKey: string,
    rekeyed: string,
  ): Promise<void> {
    const state = this.state;
    if (state === undefined) return;
    // The coordinator that answered is a peer too (a backup names only its primary): kept, so an
    // agent restarted while the primary is down still finds the backup.
    const learned =
      peers === undefined
        ? state.peers
        : [...new Set([...peers, from])].filter((url) => url !== this.ctx.url).slice(0, MAX_PEERS);
    let next: OutboundState = { ...state, peers: learned };
    if (accessKey === state.joinKey && accessKey !== state.accessKey) {
      // Proved with the token's key: the coordinator joined this agent now, under the new key.
      next = { ...next, accessKey: rekeyed };
      this.ctx.log.info({ coordinator: from }, 'joined: the coordinator keeps a key of its own');
    } else if (accessKey === state.accessKey && state.joinKey !== null) {
      next = { ...next, joinKey: null, joinTokenId: null };
    }
    const changed = JSON.stringify(next) !== JSON.stringify(state);
    this.state = next;
    if (peers !== undefined) {
      const wanted = new Set([this.ctx.url, ...learned]);
      for (const [url, dialer] of this.dialers)
        if (!wanted.has(url)) {
          dialer.stop();
          this.dialers.delete(url);
          this.ctx.log.info({ coordinator: url }, 'no longer dialing a coordinator');
        }
      for (const url of wanted) if (!this.dialers.has(url)) this.dial(url);
    }
    if (changed) await writeAtomic(this.stateFile, `${JSON.stringify(next, null, 2)}\n`, 0o600);
  }

  private dial(url: string): void {
    if (this.stopped) return;
    const dialer = new Dialer(url, this);
    this.dialers.set(url, dialer);
    dialer.start();
  }

  private async loadState(): Promise<OutboundState | undefined> {
    let text: string;
    try {
      text = await readFile(this.stateFile, 'utf8');
    } catch {
      return undefined;
    }
    let parsed: ReturnType<typeof stateSchema.safeParse>;
    try {
      parsed = stateSchema.safeParse(JSON.parse(text));
    } catch {
      parsed = stateSchema.safeParse(undefined);
    }
    if (!parsed.success) {
      this.ctx.log.warn({ file: this.stateFile }, 'ignoring an unreadable outbound state file');
      return undefined;
    }
    // Another coordinator's key: this agent joins the new one with its token.
    return parsed.data.connect === this.ctx.url ? parsed.data : undefined;
  }

  private async readTokenFile(): Promise<JoinToken | undefined> {
    const file = this.ctx.joinTokenFile;
    if (file === undefined) return undefined;
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      throw new MusterError(
        'INVALID_CONFIG',
        `cannot read --join-token-file ${file}: ${(err as Error).message}`,
      );
    }
    const token = parseJoinToken(text);
    if (token === undefined)
      throw new MusterError('INVALID_CONFIG', `${file} does not hold a join token (mjt_…)`);
    return token;
  }
}

/** One coordinator URL: dial, serve the link, dial again. */
class Dialer {
  private ws: WebSocket | undefined;
  private timer: NodeJS.Timeout | undefined;
  private failures = 0;
  private stopped = false;
  private waitingSaid = false;
  /** The coordinator this URL reached that another URL links already (see claim). */
  private behind: string | undefined;

  constructor(
    readonly url: string,
    private readonly links: OutboundLinks,
  ) {}

  start(): void {
    this.connect();
  }

  /** The link to `holderId` closed: if this URL waited behind it, it is dialed now. */
  linkFreed(holderId: string): void {
    if (this.behind !== holderId || this.stopped) return;
    this.behind = undefined;
    if (this.ws === undefined) this.schedule(0);
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    // An open link is its session's to close (the agent drains first); a dial in flight ends.
    if (this.ws !== undefined && this.ws.readyState === WebSocket.CONNECTING) this.ws.terminate();
  }

  private connect(): void {
    if (this.stopped || this.links.isStopped) return;
    const { ctx } = this.links;
    const target = `${this.url.replace(/^http/, 'ws')}${AGENT_CONNECT_PATH}`;
    const headers: Record<string, string> = {
      [AGENT_ID_HEADER]: ctx.agentId,
      [AGENT_FACTS_HEADER]: JSON.stringify(ctx.facts),
      ...(this.links.tokenId === undefined ? {} : { [JOIN_TOKEN_HEADER]: this.links.tokenId }),
    };
    ctx.log.debug({ coordinator: this.url }, 'dialing');
    const ws = new WebSocket(target, {
      headers,
      perMessageDeflate: false,
      maxPayload: ctx.maxFrameBytes + 64 * 1024,
      handshakeTimeout: 10_000,
      // Trust is the coordinator's proof of the key over this TLS session, not its certificate.
      rejectUnauthorized: false,
      followRedirects: false,
    });
    this.ws = ws;
    let binding = '';
    let peers: string[] | undefined;
    let settled = false;
    /** The coordinator this link reached, once it is this agent's link to it. */
    let linked: string | undefined;
    let duplicate = false;
    let keepalive: NodeJS.Timeout | undefined;
    const done = (delayMs: number): void => {
      if (settled) return;
      settled = true;
      ctx.log.debug({ coordinator: this.url, delayMs }, 'dialing again after a delay');
      if (this.ws === ws) this.ws = undefined;
      this.schedule(delayMs);
    };
    ws.on('upgrade', (res: IncomingMessage) => {
      binding = res.socket instanceof TLSSocket ? channelBinding(res.socket) : '';
      peers = parsePeers(res.headers[PEERS_HEADER]);
    });
    ws.on('unexpected-response', (_req, res: IncomingMessage) => {
      void readBody(res).then((body) => {
        ws.terminate();
        const said = describeBody(body);
        if (res.statusCode === 503) {
          // A backup standing by: asked again soon, said once.
          if (!this.waitingSaid) {
            this.waitingSaid = true;
            ctx.log.info({ coordinator: this.url }, `coordinator not taking agents now: ${said}`);
          }
          done(STANDBY_RETRY_MS);
          return;
        }
        this.links.log.warn(`refused-${res.statusCode}`, `coordinator refused the agent: ${said}`, {
          coordinator: this.url,
          status: res.statusCode,
        });
        done(res.statusCode === 403 ? REFUSED_RETRY_MS : this.backoff());
      });
    });
    ws.on('open', () => {
      this.waitingSaid = false;
      // Heard from: any frame, or an answer to the pings below.
      let heard = Date.now();
      const hear = (): void => {
        heard = Date.now();
      };
      ws.on('message', hear);
      ws.on('pong', hear);
      ws.on('ping', hear);
      const silentMs = ctx.linkSilentMs ?? LINK_SILENT_MS;
      keepalive = setInterval(
        () => {
          if (Date.now() - heard > silentMs) {
            this.links.log.warn('silent', 'the link to the coordinator went silent: closing it', {
              coordinator: this.url,
              silentMs,
            });
            clearInterval(keepalive);
            ws.terminate();
            return;
          }
          ws.ping();
        },
        Math.max(10, Math.floor(silentMs / 3)),
      );
      const stream = createWebSocketStream(ws) as Duplex & {
        remoteAddress?: string;
        remotePort?: number;
      };
      stream.on('error', () => undefined);
      const address = new URL(this.url);
      stream.remoteAddress = address.hostname;
      stream.remotePort = Number(address.port) || (address.protocol === 'https:' ? 443 : 80);
      if (this.stopped) {
        ws.terminate();
        return;
      }
      ctx.serve({
        stream,
        accessKeys: this.links.accessKeys,
        binding,
        authenticated: (accessKey, rekeyed, holderId) => {
          if (!this.links.claim(this.url, holderId, ws)) {
            duplicate = true;
            if (this.behind !== holderId)
              ctx.log.info(
                {
                  coordinator: this.url,
                  linkedAt: holderId === undefined ? undefined : this.links.linkedUrl(holderId),
                },
                'this URL reaches a coordinator the agent has a link to already: kept in reserve',
              );
            this.behind = holderId;
            return false;
          }
          this.behind = undefined;
          linked = holderId;
          this.failures = 0;
          ctx.log.info({ coordinator: this.url }, 'connected to the coordinator (dialed out)');
          this.links
            .joined(this.url, peers, accessKey, rekeyed)
            .catch((err: unknown) =>
              ctx.log.warn({ err }, 'could not save the outbound state (outbound.json)'),
            );
          return true;
        },
      });
    });
    ws.on('close', (code: number, reason: Buffer) => {
      const why = reason.toString('utf8').slice(0, 200);
      clearInterval(keepalive);
      if (linked !== undefined) this.links.release(linked, ws);
      if (duplicate) {
        // Freed meanwhile (linkFreed): dialed again at once.
        done(this.behind === undefined ? 0 : DUPLICATE_RETRY_MS);
        return;
      }
      switch (code) {
        case OutboundClose.pending:
          if (!this.waitingSaid) {
            this.waitingSaid = true;
            ctx.log.warn(
              { coordinator: this.url },
              'joined: waiting for an admin to approve this agent (muster agents approve NAME)',
            );
          }
          done(PENDING_RETRY_MS);
          return;
        case OutboundClose.notActive:
          done(STANDBY_RETRY_MS);
          return;
        case OutboundClose.peersChanged:
          done(0);
          return;
        default:
          if (code !== 1000 && code !== 1005 && code !== 1006)
            this.links.log.warn(`closed-${code}`, 'the coordinator closed the link', {
              coordinator: this.url,
              code,
              reason: why,
            });
          done(this.backoff());
      }
    });
    ws.on('error', (err: Error) => {
      this.links.log.warn('dial', 'cannot reach the coordinator', {
        coordinator: this.url,
        error: err.message.slice(0, 200),
      });
      // 'close' follows, except when the request never got a socket: settle here too.
      if (ws.readyState === WebSocket.CLOSED) done(this.backoff());
    });
  }

  private backoff(): number {
    const exp = Math.min(BACKOFF.maxMs, BACKOFF.firstMs * 2 ** this.failures);
    this.failures = Math.min(this.failures + 1, 16);
    return Math.round(exp / 2 + (Math.random() * exp) / 2);
  }

  private schedule(delayMs: number): void {
    if (this.stopped || this.links.isStopped) return;
    clearTimeout(this.timer);
    // Not unref'd: an agent that only dials out has nothing else keeping it alive between dials.
    this.timer = setTimeout(() => this.connect(), delayMs);
  }
}

function parsePeers(value: string | string[] | undefined): string[] | undefined {
  if (typeof value !== 'string' || value.length > 4096) return undefined;
  try {
    const parsed = peersSchema.safeParse(JSON.parse(value));
    if (!parsed.success) return undefined;
    return parsed.data
      .map((url) => new URL(url))
      .filter((url) => url.protocol === 'https:' || url.protocol === 'http:')
      .map((url) => url.origin);
  } catch {
    return undefined;
  }
}

/** At most 4 KiB of an error answer. */
function readBody(res: IncomingMessage): Promise<string> {
  return new Promise((resolve) => {
    let body = '';
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => {
      if (body.length < 4096) body += chunk;
    });
    res.on('end', () => resolve(body.slice(0, 4096)));
    res.on('error', () => resolve(body));
    res.on('close', () => resolve(body));
  });
}

function describeBody(body: string): string {
  try {
    const parsed = JSON.parse(body) as { message?: unknown };
    if (typeof parsed.message === 'string') return parsed.message.slice(0, 300);
  } catch {
    // not JSON
  }
  return body.slice(0, 300) || 'no reason given';
}
