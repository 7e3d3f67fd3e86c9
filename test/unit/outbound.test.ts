/**
 * Agents that dial out, below the end-to-end test (test/e2e/agent-dial-out.test.ts): the join
 * token's format and the key derived from it, automatic labels, the join-token store, the
 * agent's --connect options, and the routes (tokens, approve) with a real store.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { WebSocket, WebSocketServer } from 'ws';
import {
  OutboundLinks,
  type OutboundContext,
  type OutboundLink,
} from '../../src/agent/outbound.js';
import { afterEach, describe, it } from 'node:test';
import type { AgentView, CreatedJoinTokenView } from '../../src/api/views/agents.js';
import { compileAgentOptions } from '../../src/agent/options.js';
import { automaticLabels, relabel } from '../../src/coordinator/pool/agent-labels.js';
import { openSqliteStore } from '../../src/coordinator/store/sqlite-store.js';
import {
  formatJoinToken,
  joinKey,
  newJoinToken,
  parseJoinToken,
  agentFactsSchema,
  type AgentFacts,
} from '../../src/protocol/outbound.js';
import { MusterError } from '../../src/protocol/errors.js';
import { backupHa, testApi, type TestApi } from '../helpers/api-context.js';
import { waitFor } from '../helpers/agent-process.js';
import { startTcpProxy } from '../helpers/tcp-proxy.js';

const FACTS: AgentFacts = {
  hostname: 'build-7',
  os: 'linux',
  arch: 'x64',
  cores: 8,
  memoryBytes: 16 * 1024 ** 3,
  compilers: ['gcc-12', 'clang-16'],
  agentVersion: '0.1.0',
};
const AGENT_ID = '0b7d6c1e-6a57-4c8e-9d4b-1f2e3a4b5c6d';

describe('join tokens', () => {
  it('round-trip through their text form; anything else is not one', () => {
    const token = newJoinToken();
    assert.match(token.token, /^mjt_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$/);
    assert.deepEqual(parseJoinToken(`  ${token.token}\n`), { id: token.id, secret: token.secret });
    assert.equal(formatJoinToken(token), token.token);
    for (const bad of ['', 'mjt_', `mjt_${token.id}`, token.token.slice(0, -1), `x${token.token}`])
      assert.equal(parseJoinToken(bad), undefined, bad);
  });

  it('derive a key per agent that only the token makes', () => {
    const { secret } = newJoinToken();
    const key = joinKey(secret, AGENT_ID);
    assert.match(key, /^[0-9a-f]{64}$/);
    assert.equal(joinKey(secret, AGENT_ID), key);
    assert.notEqual(joinKey(secret, AGENT_ID.replace('0b', '1b')), key);
    assert.notEqual(joinKey(newJoinToken().secret, AGENT_ID), key);
  });
});

describe('what an agent says of itself', () => {
  it('is bounded to names that cannot pose as an admin label', () => {
    assert.ok(agentFactsSchema.safeParse(FACTS).success);
    for (const bad of [
      { ...FACTS, os: 'prod-deploy' },
      { ...FACTS, arch: 'signing' },
      { ...FACTS, compilers: ['release-signing'] },
      { ...FACTS, compilers: ['gcc-12345'] },
      { ...FACTS, cores: 0 },
    ])
      assert.equal(agentFactsSchema.safeParse(bad).success, false, JSON.stringify(bad));
  });
});

describe('automatic labels', () => {
  it("name the agent's OS, architecture, cores, memory and compilers", () => {
    assert.deepEqual(automaticLabels(FACTS), [
      'linux',
      'x64',
      'cores-8',
      'memory-16g',
      'gcc-12',
      'gcc',
      'clang-16',
      'clang',
    ]);
  });

  it('give way to the new facts and keep the labels an admin or the token gave', () => {
    const first = relabel(['pool-a'], null, FACTS);
    assert.deepEqual(first.slice(0, 2), ['pool-a', 'linux']);
    const upgraded = relabel(first, FACTS, { ...FACTS, cores: 16, compilers: ['gcc-13'] });
    assert.ok(upgraded.includes('pool-a'));
    assert.ok(upgraded.includes('cores-16') && !upgraded.includes('cores-8'));
    assert.ok(upgraded.includes('gcc-13') && !upgraded.includes('gcc-12'));
    assert.ok(!upgraded.includes('clang'));
  });
});

describe('the join-token store', () => {
  it('keeps tokens until they expire or are revoked, and counts their uses', () => {
    let now = new Date('2030-01-01T00:00:00.000Z');
    const store = openSqliteStore(':memory:', { now: () => now });
    const base = { secret: 's'.repeat(43), labels: ['a'], autoApprove: false, createdBy: 'admin' };
    store.joinTokens.create({ ...base, id: '0000000000000001', expiresAt: null });
    store.joinTokens.create({
      ...base,
      id: '0000000000000002',
      expiresAt: '2030-01-01T01:00:00.000Z',
    });
    assert.equal(store.joinTokens.valid('0000000000000002')?.labels[0], 'a');
    store.joinTokens.noteUse('0000000000000001');
    assert.equal(store.joinTokens.get('0000000000000001')?.uses, 1);
    now = new Date('2030-01-01T01:00:00.000Z');
    assert.equal(store.joinTokens.valid('0000000000000002'), undefined);
    assert.ok(store.joinTokens.valid('0000000000000001'));
    // Creating one drops the expired ones first: they never count against the limit.
    store.joinTokens.create({ ...base, id: '0000000000000003', expiresAt: null });
    assert.equal(store.joinTokens.get('0000000000000002'), undefined);
    assert.equal(store.joinTokens.removeExpired(), 0);
    assert.equal(store.joinTokens.revoke('0000000000000003'), true);
    assert.equal(store.joinTokens.revoke('0000000000000001'), true);
    assert.equal(store.joinTokens.revoke('0000000000000001'), false);
    assert.deepEqual(store.joinTokens.list(), []);
    store.close();
  });

  it('finds an agent by the id it dials with; two agents cannot share one', () => {
    const store = openSqliteStore(':memory:');
    const agent = {
      host: '10.0.0.9',
      port: 0,
      accessKey: 'k'.repeat(64),
      fingerprint: null,
      tls: true,
      labels: [],
      slots: null,
    };
    store.addAgent({ ...agent, name: 'b7', agentId: AGENT_ID, approved: false, facts: FACTS });
    assert.equal(store.getAgentByAgentId(AGENT_ID)?.name, 'b7');
    assert.deepEqual(store.getAgentByAgentId(AGENT_ID)?.facts, FACTS);
    assert.equal(store.getAgentByAgentId(AGENT_ID)?.approved, false);
    assert.throws(() => store.addAgent({ ...agent, name: 'b8', agentId: AGENT_ID }));
    // Dialed agents have none, and there may be many of them.
    store.addAgent({ ...agent, name: 'd1' });
    store.addAgent({ ...agent, name: 'd2' });
    assert.equal(store.updateAgent('b7', { approved: true }).approved, true);
    store.close();
  });
});

describe('muster agent --connect', () => {
  const refused = (options: Parameters<typeof compileAgentOptions>[0], message: RegExp) =>
    assert.throws(
      () => compileAgentOptions(options),
      (err: unknown) =>
        err instanceof MusterError && err.code === 'INVALID_CONFIG' && message.test(err.message),
    );

  it('dials out instead of listening, unless --listen is given too', () => {
    const token = newJoinToken().token;
    const out = compileAgentOptions({ connect: 'https://coord.example:7443/x', joinToken: token });
    assert.equal(out.listens, false);
    assert.equal(out.connect?.url, 'https://coord.example:7443');
    assert.equal(out.connect?.joinToken?.id, parseJoinToken(token)?.id);
    const both = compileAgentOptions({ connect: 'https://c:1', listen: '127.0.0.1:0' });
    assert.equal(both.listens, true);
    assert.equal(compileAgentOptions({}).listens, true);
  });

  it('refuses what cannot work, saying why', () => {
    refused({ connect: 'not a url' }, /not a URL/);
    refused({ connect: 'coord:7443' }, /https:\/\//);
    refused({ connect: 'ftp://coord:7443' }, /https:\/\//);
    refused({ connect: 'https://c:1', joinToken: 'secret' }, /not a join token/);
    refused({ joinToken: newJoinToken().token }, /needs --connect/);
    refused(
      { connect: 'https://c:1', joinToken: newJoinToken().token, joinTokenFile: '/t' },
      /not both/,
    );
  });
});

describe('routes: join tokens and approval', () => {
  let api: TestApi | undefined;
  afterEach(async () => {
    await api?.close();
    api = undefined;
  });

  it('create a token shown once, list it without its secret, revoke it; admins only', async () => {
    api = await testApi();
    const created = await api.call('POST', '/api/v1/join-tokens', {
      token: api.admin,
      body: { labels: ['gpu'], autoApprove: true, expires: '2h' },
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const view = created.body as CreatedJoinTokenView;
    const secret = parseJoinToken(view.token)?.secret ?? '';
    assert.equal(view.autoApprove, true);
    assert.deepEqual(view.labels, ['gpu']);
    assert.match(view.command, /^muster agent --connect http:\/\/\S+ --join-token mjt_/);
    const expiresIn = Date.parse(view.expiresAt ?? '') - Date.now();
    assert.ok(expiresIn > 7_000_000 && expiresIn <= 7_200_000, String(expiresIn));

    const listed = await api.call('GET', '/api/v1/join-tokens', { token: api.admin });
    assert.equal(listed.status, 200);
    assert.ok(!JSON.stringify(listed.body).includes(secret));
    assert.equal((listed.body as unknown[]).length, 1);
    const audit = api.store.audit.list();
    assert.equal(audit[0]?.action, 'token.create');
    assert.ok(!JSON.stringify(audit).includes(secret));

    for (const [method, path] of [
      ['GET', '/api/v1/join-tokens'],
      ['POST', '/api/v1/join-tokens'],
      ['DELETE', `/api/v1/join-tokens/${view.id}`],
    ] as const)
      assert.equal((await api.call(method, path, { token: api.viewer, body: {} })).status, 403);

    const bare = await api.call('POST', '/api/v1/join-tokens', { token: api.admin, body: {} });
    assert.equal((bare.body as CreatedJoinTokenView).autoApprove, false);
    const never = await api.call('POST', '/api/v1/join-tokens', {
      token: api.admin,
      body: { expires: 'never' },
    });
    assert.equal((never.body as CreatedJoinTokenView).expiresAt, null);
    const bad = await api.call('POST', '/api/v1/join-tokens', {
      token: api.admin,
      body: { expires: '30' },
    });
    assert.equal(bad.status, 400, JSON.stringify(bad.body));
    const zero = await api.call('POST', '/api/v1/join-tokens', {
      token: api.admin,
      body: { expires: '0s' },
    });
    assert.equal(zero.status, 400, JSON.stringify(zero.body));

    const revoked = await api.call('DELETE', `/api/v1/join-tokens/${view.id}`, {
      token: api.admin,
    });
    assert.equal(revoked.status, 204);
    const again = await api.call('DELETE', `/api/v1/join-tokens/${view.id}`, {
      token: api.admin,
    });
    assert.equal(again.status, 404);
    assert.equal(api.store.audit.list()[0]?.action, 'token.revoke');
  });

  it('keep the names the API routes use from agents', async () => {
    api = await testApi();
    for (const name of ['probe', 'connect']) {
      const added = await api.call('POST', '/api/v1/agents', {
        token: api.admin,
        body: { name, address: '10.0.0.5:7420', accessKey: 'k'.repeat(32), tls: false },
      });
      assert.equal(added.status, 400, `${name}: ${JSON.stringify(added.body)}`);
    }
  });

  it('approve a pending agent once, audited; 404 for none; a backup refuses', async () => {
    api = await testApi();
    api.store.addAgent({
      name: 'b7',
      host: '10.0.0.9',
      port: 0,
      accessKey: 'k'.repeat(64),
      fingerprint: null,
      tls: true,
      labels: [],
      slots: null,
      agentId: AGENT_ID,
      approved: false,
      facts: FACTS,
    });
    const approved = await api.call('POST', '/api/v1/agents/b7/approve', { token: api.admin });
    assert.equal(approved.status, 200, JSON.stringify(approved.body));
    assert.equal(api.store.getAgent('b7')?.approved, true);
    const view = approved.body as AgentView | undefined;
    if (view !== undefined) assert.equal(view.name, 'b7');
    await api.call('POST', '/api/v1/agents/b7/approve', { token: api.admin });
    assert.equal(api.store.audit.list({ action: 'agent.approve' }).length, 1);
    assert.equal(
      (await api.call('POST', '/api/v1/agents/none/approve', { token: api.admin })).status,
      404,
    );
    assert.equal(
      (await api.call('POST', '/api/v1/agents/b7/approve', { token: api.viewer })).status,
      403,
    );
    await api.close();
    api = await testApi(() => ({ ha: backupHa('backup-active', 'https://primary:7443') }));
    const onBackup = await api.call('POST', '/api/v1/agents/b7/approve', { token: api.admin });
    assert.equal((onBackup.body as { error: { code: string } }).error.code, 'READ_ONLY');
  });
});

/** An agent's dialers for `url`, with a join token, serving links with `serve`. */
function outboundLinks(
  url: string,
  dataDir: string,
  token: { id: string; secret: string },
  serve: (link: OutboundLink) => void,
  more: Partial<OutboundContext> = {},
): OutboundLinks {
  return new OutboundLinks({
    ...more,
    url,
    joinToken: { id: token.id, secret: token.secret },
    joinTokenFile: undefined,
    dataDir,
    agentId: AGENT_ID,
    facts: FACTS,
    maxFrameBytes: 4 * 1024 * 1024,
    log: pino({ level: 'silent' }),
    serve,
  });
}

describe("the agent's outbound state", () => {
  it('keeps the key the join made, confirms it, and keeps the backup that answered as a peer', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'muster-outbound-'));
    const primary = 'https://127.0.0.1:9';
    const backupUrl = 'https://127.0.0.2:9';
    const token = newJoinToken();
    const links = outboundLinks(primary, dataDir, token, () => undefined);
    const saved = async (): Promise<Record<string, unknown>> =>
      JSON.parse(await readFile(join(dataDir, 'outbound.json'), 'utf8')) as Record<string, unknown>;
    try {
      await links.start();
      const tokenKey = joinKey(token.secret, AGENT_ID);
      assert.deepEqual(links.accessKeys, [tokenKey]);
      assert.equal(links.tokenId, token.id);
      // Joined: the handshake's new key is taken, the token's kept until confirmed.
      const made = 'a'.repeat(64);
      await links.joined(primary, [backupUrl], tokenKey, made);
      assert.deepEqual(links.accessKeys, [made, tokenKey]);
      assert.deepEqual(links.urls.sort(), [primary, backupUrl]);
      // Confirmed on the backup, which names only its primary: the backup stays a peer.
      await links.joined(backupUrl, [primary], made, 'b'.repeat(64));
      assert.deepEqual(links.accessKeys, [made]);
      assert.equal(links.tokenId, undefined);
      assert.deepEqual(await saved(), {
        connect: primary,
        accessKey: made,
        joinKey: null,
        joinTokenId: null,
        peers: [backupUrl],
      });
      assert.deepEqual(links.urls.sort(), [primary, backupUrl]);
      // The primary says it has no backup now: the agent stops dialing it.
      await links.joined(primary, [], made, 'c'.repeat(64));
      assert.deepEqual(links.urls, [primary]);
      assert.deepEqual((await saved()).peers, []);
    } finally {
      links.stop();
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});

/** Two WebSocket servers on loopback, each with the connections it took. */
async function twoServers(): Promise<{
  servers: WebSocketServer[];
  open: WebSocket[][];
  ports: number[];
  close: () => void;
}> {
  const servers = [0, 1].map(() => new WebSocketServer({ host: '127.0.0.1', port: 0 }));
  const open: WebSocket[][] = [[], []];
  servers.forEach((server, i) => server.on('connection', (ws) => open[i]!.push(ws)));
  await Promise.all(servers.map((s) => once(s, 'listening')));
  return {
    servers,
    open,
    ports: servers.map((s) => (s.address() as AddressInfo).port),
    close: () => {
      for (const server of servers) server.close();
      for (const ws of open.flat()) ws.terminate();
    },
  };
}

/**
 * Dialers whose every link reaches coordinator "holder-1" (the agent's session in brief: a link
 * stays only if authenticated() keeps it); `kept` gets one entry per link kept.
 */
function oneCoordinatorLinks(
  url: string,
  dataDir: string,
  kept: string[],
  more: Partial<OutboundContext> = {},
): OutboundLinks {
  const links: OutboundLinks = outboundLinks(
    url,
    dataDir,
    newJoinToken(),
    (link) => {
      const key = links.accessKeys[0]!;
      if (link.authenticated(key, key, 'holder-1')) kept.push(String(link.stream.remotePort));
      else link.stream.destroy();
    },
    more,
  );
  return links;
}

const BOUND_MS = 20_000;

describe('one coordinator at two URLs', () => {
  it('gets one link: the other URL waits in reserve and takes over when that link closes', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'muster-outbound-'));
    // Two servers standing for one coordinator reachable at two URLs (an agent's --connect and a
    // backup's --backup-of spelling it differently): both say the same holder.
    const { servers, open, ports, close } = await twoServers();
    const urls = ports.map((port) => `http://127.0.0.1:${port}`);
    const kept: string[] = [];
    const links = oneCoordinatorLinks(urls[0]!, dataDir, kept);
    try {
      await writeFile(
        join(dataDir, 'outbound.json'),
        JSON.stringify({
          connect: urls[0],
          accessKey: 'a'.repeat(64),
          joinKey: null,
          joinTokenId: null,
          peers: [urls[1]],
        }),
      );
      await links.start();
      await waitFor(() => kept.length === 1 && open[0]!.length + open[1]!.length === 2, BOUND_MS);
      const first = links.linkedUrl('holder-1');
      assert.ok(first === urls[0] || first === urls[1], String(first));
      const firstIndex = urls.indexOf(first!);
      const other = 1 - firstIndex;
      // The reserve URL's connection was closed by the agent; the kept one stays.
      await waitFor(() => open[other]![0]!.readyState === WebSocket.CLOSED, BOUND_MS);
      assert.equal(open[firstIndex]![0]!.readyState, WebSocket.OPEN);
      // The kept link goes (its URL stops answering): the reserve URL is dialed at once, kept.
      servers[firstIndex]!.close();
      for (const ws of open[firstIndex]!) ws.terminate();
      await waitFor(() => kept.length === 2, BOUND_MS);
      assert.equal(links.linkedUrl('holder-1'), urls[other]);
      assert.equal(open[other]!.length, 2);
    } finally {
      links.stop();
      close();
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});

describe('a link that goes silent', () => {
  it('is closed by the agent, and the URL in reserve for that coordinator takes over', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'muster-outbound-'));
    const { open, ports, close } = await twoServers();
    // The first URL goes through a proxy that can stop carrying bytes without closing anything.
    const proxy = await startTcpProxy({ host: '127.0.0.1', port: ports[0]! });
    const urls = [proxy.url('http'), `http://127.0.0.1:${ports[1]}`];
    const links = oneCoordinatorLinks(urls[0]!, dataDir, [], { linkSilentMs: 600 });
    try {
      await links.start();
      await waitFor(() => links.linkedUrl('holder-1') === urls[0], BOUND_MS);
      // The coordinator names its other URL (a backup's spelling of it): kept in reserve.
      await links.joined(urls[0]!, [urls[1]!], links.accessKeys[0]!, 'b'.repeat(64));
      await waitFor(
        () => open[1]!.length === 1 && open[1]![0]!.readyState === WebSocket.CLOSED,
        BOUND_MS,
      );
      assert.equal(links.linkedUrl('holder-1'), urls[0]);
      // Pings answered: the quiet but healthy link stays past the silence limit.
      await new Promise((r) => setTimeout(r, 1500));
      assert.equal(links.linkedUrl('holder-1'), urls[0]);
      // Half-open: nothing comes back. The agent closes it and the reserve URL is linked.
      proxy.stall();
      await waitFor(() => links.linkedUrl('holder-1') === urls[1], BOUND_MS);
      assert.equal(open[1]!.at(-1)!.readyState, WebSocket.OPEN);
    } finally {
      links.stop();
      await proxy.close();
      close();
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
