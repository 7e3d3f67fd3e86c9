/**
 * Agents that dial out (issue 14): an agent in a network namespace that drops every incoming
 * connection (test/helpers/netns.ts) joins a primary with a join token, waits for an admin's
 * approval, runs builds, keeps its key across a restart without the token, learns the selected
 * backup, follows a failover to it and the failback, twice; a wrong token admits nobody.
 */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { connect as netConnect } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { WebSocket } from 'ws';
import type { AgentView, CreatedJoinTokenView, JoinTokenView } from '../../src/api/views/agents.js';
import type { AuditView } from '../../src/api/views/audit.js';
import type { BuildView } from '../../src/api/views/builds.js';
import {
  cleanup,
  makeTempDir,
  startDialingAgent,
  waitFor,
  type DialingAgent,
} from '../helpers/agent-process.js';
import { runCli } from '../helpers/cli.js';
import {
  killCoordinators,
  restartCoordinator,
  startCoordinator,
  testTls,
  type StartedCoordinator,
} from '../helpers/coordinator-process.js';
import { FAST, startBackup, status, submit } from '../helpers/ha.js';
import {
  NS_SIDE,
  ROOT_SIDE,
  outboundOnlyNamespace,
  type OutboundOnlyNamespace,
} from '../helpers/netns.js';

let ns: OutboundOnlyNamespace;
let primary: StartedCoordinator;
let backup: StartedCoordinator;
let agent: DialingAgent;
let token: CreatedJoinTokenView;
let cliDir: string;

const PRIMARY_ARGS = [...FAST];

async function agents(of: StartedCoordinator): Promise<AgentView[]> {
  const response = await of.api<AgentView[]>('GET', '/agents');
  assert.equal(response.status, 200, JSON.stringify(response.body));
  return response.body;
}

async function waitForAgentStatus(
  of: StartedCoordinator,
  wanted: string,
  what: string,
): Promise<AgentView> {
  let seen: AgentView[] = [];
  try {
    await waitFor(
      async () => {
        seen = await agents(of);
        return seen.length === 1 && seen[0]!.status === wanted;
      },
      45_000,
      what,
    );
  } catch (err) {
    const agentsSeen = JSON.stringify(seen.map((a) => [a.name, a.status, a.lastError]));
    const said = (agent?.logs ?? [])
      .slice(-14)
      .map((l) => `${String(l.msg)} ${JSON.stringify(l.code ?? l.coordinator ?? '')}`);
    throw new Error(
      `${(err as Error).message} (agents: ${agentsSeen}; agent said: ${said.join(' | ')})`,
      {
        cause: err,
      },
    );
  }
  return seen[0]!;
}

async function buildOn(of: StartedCoordinator, words: string): Promise<void> {
  const build = await submit(
    of,
    `tasks:\n  hello:\n    run: echo ${words}\n    requires: [outside, linux]\n`,
  );
  const done = await of.waitForBuild(build.id, 60_000);
  assert.equal(done.status, 'succeeded', JSON.stringify(done));
}

before(async () => {
  ns = await outboundOnlyNamespace();
  cliDir = await makeTempDir('muster-dial-out-cli-');
  primary = await startCoordinator({ tls: true, listen: `${ROOT_SIDE}:0`, args: PRIMARY_ARGS });
  backup = await startBackup(
    primary,
    'b1',
    ['--primary-ca', testTls().cert, '--failover-timeout', '3s'],
    { listen: `${ROOT_SIDE}:0` },
  );
});

after(async () => {
  await killCoordinators();
  await cleanup([cliDir]);
  await ns?.remove();
});

describe('an agent that dials out', () => {
  it('has no inbound route: nothing outside its namespace can connect to it', async () => {
    // A listener inside the namespace, dialed from outside: the SYN is dropped, so it times out.
    const reached = await new Promise<boolean>((resolve) => {
      const socket = netConnect({ host: NS_SIDE, port: 22, timeout: 1500 });
      socket.once('connect', () => resolve(true));
      socket.once('timeout', () => resolve(false));
      socket.once('error', () => resolve(false));
      setTimeout(() => socket.destroy(), 2000).unref();
    });
    assert.equal(reached, false);
  });

  it('joins with a join token and waits for an admin', async () => {
    const created = await primary.api<CreatedJoinTokenView>('POST', '/join-tokens', {
      labels: ['outside'],
      expires: '1h',
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    token = created.body;
    assert.match(token.token, /^mjt_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$/);
    assert.equal(token.autoApprove, false);
    assert.ok(token.command.includes(`--connect ${primary.url}`), token.command);

    agent = await startDialingAgent(primary.url, {
      joinToken: token.token,
      wrapper: ns.wrapper,
      args: ['--lease-ttl', '2s'],
    });
    const pending = await waitForAgentStatus(primary, 'pending', 'the agent to join');
    assert.equal(pending.dialsOut, true);
    assert.equal(pending.approved, false);
    assert.equal(pending.address, NS_SIDE);
    assert.ok(pending.labels.includes('outside'), pending.labels.join());
    assert.ok(pending.labels.includes('linux'), pending.labels.join());
    assert.ok(pending.labels.includes(`cores-${pending.facts?.cores}`), pending.labels.join());
    assert.equal(pending.facts?.os, 'linux');

    // Listed without its secret, used once; the join and the token are in the audit log.
    const listed = await primary.api<JoinTokenView[]>('GET', '/join-tokens');
    assert.equal(listed.body.length, 1);
    assert.equal(listed.body[0]?.uses, 1);
    assert.ok(!JSON.stringify(listed.body).includes(token.token.slice(-43)));
    const audit = (await primary.api<AuditView[]>('GET', '/audit')).body;
    assert.ok(audit.some((r) => r.action === 'token.create' && r.target === token.id));
    const join = audit.find((r) => r.action === 'agent.join');
    assert.equal(join?.target, pending.name);
    assert.equal(join?.ip, NS_SIDE);
    assert.ok(!JSON.stringify(audit).includes(token.token.slice(-43)), 'no secret in the audit');

    // Pending: a build it could run stays queued.
    const queued = await submit(
      primary,
      'tasks:\n  wait:\n    run: "true"\n    requires: [outside]\n',
    );
    await new Promise((r) => setTimeout(r, 1500));
    const still = (await primary.api<BuildView>('GET', `/builds/${queued.id}`)).body;
    assert.equal(still.tasks[0]?.status, 'queued', JSON.stringify(still));
    await primary.api('POST', `/builds/${queued.id}/cancel`);
  });

  it('refuses an agent whose token is wrong', async () => {
    const wrong = `mjt_${'0'.repeat(16)}_${'A'.repeat(43)}`;
    const stranger = await startDialingAgent(primary.url, {
      joinToken: wrong,
      wrapper: ns.wrapper,
    });
    await waitFor(
      () => stranger.logs.some((l) => String(l.msg).includes('coordinator refused the agent')),
      15_000,
      'the refusal',
    );
    await stranger.kill();
    assert.equal((await agents(primary)).length, 1);
  });

  it('answers upgrades it cannot check with an error, and a forged key gets nowhere', async () => {
    const facts = JSON.stringify({
      hostname: 'forger',
      os: 'linux',
      arch: 'x64',
      cores: 1,
      memoryBytes: 1,
      agentVersion: '0',
    });
    const agentId = '5f0c1d2e-3a4b-4c5d-8e6f-7a8b9c0d1e2f';
    const attempt = (path: string, headers: Record<string, string>, to = primary) =>
      new Promise<{ status?: number; closed?: number }>((resolve) => {
        // The test certificate is trusted through NODE_EXTRA_CA_CERTS (scripts/run-tests.js).
        const ws = new WebSocket(`${to.url.replace('https', 'wss')}${path}`, { headers });
        ws.on('unexpected-response', (_req, res) => {
          resolve({ status: res.statusCode ?? 0 });
          ws.terminate();
        });
        // Past the upgrade: a frame that is no Muster frame, where the proof should come.
        ws.on('open', () => ws.send(Buffer.alloc(64, 0xff)));
        ws.on('close', (code) => resolve({ closed: code }));
        ws.on('error', () => undefined);
      });
    assert.deepEqual(await attempt('/api/v1/agents/elsewhere', {}), { status: 404 });
    assert.deepEqual(await attempt('/api/v1/agents/connect', { 'muster-agent-facts': facts }), {
      status: 400,
    });
    assert.deepEqual(
      await attempt('/api/v1/agents/connect', {
        'muster-agent-id': agentId,
        'muster-agent-facts': '{"hostname": 1}',
      }),
      { status: 400 },
    );
    assert.deepEqual(
      await attempt('/api/v1/agents/connect', {
        'muster-agent-id': agentId,
        'muster-agent-facts': facts,
      }),
      { status: 403 },
    );
    // The token's id is not a secret: without the secret the handshake fails, nothing joins.
    const forged = await attempt('/api/v1/agents/connect', {
      'muster-agent-id': agentId,
      'muster-agent-facts': facts,
      'muster-join-token': token.id,
    });
    assert.ok(forged.closed !== undefined, JSON.stringify(forged));
    assert.equal((await agents(primary)).length, 1);
    // A backup standing by takes no agents.
    assert.deepEqual(
      await attempt(
        '/api/v1/agents/connect',
        { 'muster-agent-id': agentId, 'muster-agent-facts': facts },
        backup,
      ),
      { status: 503 },
    );
  });

  it('runs builds once approved (muster agents approve)', async () => {
    const [pending] = await agents(primary);
    const approved = await runCli(['agents', 'approve', pending!.name], {
      env: {
        MUSTER_URL: primary.url,
        MUSTER_TOKEN: primary.token,
        MUSTER_CONFIG_DIR: cliDir,
        NODE_EXTRA_CA_CERTS: testTls().cert,
      },
      cwd: cliDir,
      timeoutMs: 30_000,
    });
    assert.equal(approved.code, 0, approved.stderr);
    await waitForAgentStatus(primary, 'connected', 'the approved agent to connect');
    await buildOn(primary, 'from behind the firewall');
    const audit = (await primary.api<AuditView[]>('GET', '/audit')).body;
    assert.ok(audit.some((r) => r.action === 'agent.approve' && r.target === pending!.name));
  });

  it('comes back after a restart without its token', async () => {
    await agent.stop();
    await waitFor(
      async () => (await agents(primary))[0]?.status !== 'connected',
      15_000,
      'the link to drop',
    );
    agent = await startDialingAgent(primary.url, {
      dataDir: agent.dataDir,
      wrapper: ns.wrapper,
      args: ['--lease-ttl', '2s'],
    });
    await waitForAgentStatus(primary, 'connected', 'the agent to reconnect');
    await buildOn(primary, 'after a restart');
  });

  it('opens nothing to a clone that holds the token but not the key the join made', async () => {
    // Same agent id, same token: it derives the token's key, which the coordinator no longer
    // uses for this agent, so the coordinator's proof fails the clone's check and it gets nothing.
    const cloneDir = await makeTempDir('muster-dial-out-clone-');
    await writeFile(join(cloneDir, 'agent-id'), `${agent.agentId}\n`);
    const clone = await startDialingAgent(primary.url, {
      dataDir: cloneDir,
      joinToken: token.token,
      wrapper: ns.wrapper,
    });
    await waitFor(
      () =>
        clone.logs.some((l) => String(l.msg).includes('authentication failed: wrong access key')),
      20_000,
      "the clone to refuse the coordinator's proof",
    );
    await clone.kill();
    assert.equal((await agents(primary))[0]?.status, 'connected');
    await buildOn(primary, 'still on the real agent');
  });

  it('follows a failover to the selected backup and the failback, twice', async () => {
    const selected = await primary.api('PUT', '/backups/selected', { name: 'b1' });
    assert.equal(selected.status, 200, JSON.stringify(selected.body));
    await backup.loginWhenReady();
    // The primary tells the agent of its backup: it dials it too (standing by, it answers 503).
    await waitFor(
      () =>
        agent.logs.some(
          (l) => l.coordinator === backup.url && String(l.msg).includes('not taking agents'),
        ),
      30_000,
      'the agent to dial the backup',
    );
    for (const round of [1, 2]) {
      await primary.kill();
      await waitFor(
        async () => (await status(backup)).role === 'backup-active',
        45_000,
        `takeover ${round}`,
      );
      await waitForAgentStatus(backup, 'connected', `the agent on the backup (${round})`);
      await buildOn(backup, `on the backup, round ${round}`);

      primary = await restartCoordinator(primary, { tls: true, args: PRIMARY_ARGS });
      await waitFor(
        async () => {
          const seen = await status(backup);
          return seen.role === 'backup-standby' && seen.primary?.reachable === true;
        },
        60_000,
        `failback ${round}`,
      );
      await waitForAgentStatus(primary, 'connected', `the agent back on the primary (${round})`);
      await buildOn(primary, `back on the primary, round ${round}`);
    }
  });

  it('stays out once an admin removed it, and the token it joined with does not bring it back', async () => {
    const [joined] = await agents(primary);
    const removed = await primary.api('DELETE', `/agents/${joined!.name}`);
    assert.equal(removed.status, 204);
    await waitFor(
      () => agent.logs.some((l) => String(l.msg).includes('coordinator refused the agent')),
      30_000,
      'the removed agent to be refused',
    );
    assert.deepEqual(await agents(primary), []);
  });
});
