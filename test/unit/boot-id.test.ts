/**
 * Machine identity (design §6): the hashed kernel boot id, what the agent says in
 * `ready.capacity.bootId`, and what the coordinator's client and pool make of it, older agents
 * (no bootId) and future ones (another form) included.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { Agent } from '../../src/agent/agent.js';
import { compileAgentOptions } from '../../src/agent/options.js';
import { BOOT_ID_FILE, bootIdOf, readBootId } from '../../src/common/boot-id.js';
import {
  AgentConnection,
  type AgentConnectionContext,
} from '../../src/coordinator/pool/agent-connection.js';
import { snapshotOf } from '../../src/coordinator/pool/agent-snapshot.js';
import { AgentClient } from '../../src/protocol/client/agent-client.js';
import { newInstanceKey } from '../../src/protocol/handshake.js';
import { readySchema } from '../../src/protocol/messages.js';

const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');

describe('boot id', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'muster-boot-id-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('is sha256 of "muster-boot:" and the trimmed boot id; nothing for an empty file', () => {
    const raw = 'c253d687-7b1b-4754-8911-5e141920c5fe';
    assert.equal(bootIdOf(`${raw}\n`), sha256(`muster-boot:${raw}`));
    assert.equal(bootIdOf(`  ${raw}  \n`), bootIdOf(raw));
    assert.notEqual(bootIdOf('another-boot'), bootIdOf(raw));
    assert.equal(bootIdOf(''), undefined);
    assert.equal(bootIdOf(' \n'), undefined);
  });

  it("reads this machine's kernel boot id, and nothing from a missing file", async () => {
    const raw = (await readFile(BOOT_ID_FILE, 'utf8')).trim();
    assert.match(raw, /^[0-9a-f-]{36}$/, 'Linux has a boot id');
    const id = await readBootId();
    assert.equal(id, sha256(`muster-boot:${raw}`));
    assert.equal(await readBootId(), id, 'the same on every read');
    assert.equal(await readBootId(join(dir, 'no-such-file')), undefined);
    await writeFile(join(dir, 'boot_id'), 'abc\n');
    assert.equal(await readBootId(join(dir, 'boot_id')), sha256('muster-boot:abc'));
  });

  it('is optional in ready.capacity: absent (older agents) or in another form reads as absent', () => {
    const ready = {
      t: 'ready',
      proof: 'a'.repeat(64),
      instance: { key: 'k', product: 'muster', dir: 'd' },
      limits: { maxFrameBytes: 1024 },
    };
    const bootId = 'b'.repeat(64);
    const parsed = readySchema.parse({ ...ready, capacity: { cores: 2, bootId } });
    assert.deepEqual(parsed.capacity, { cores: 2, bootId });
    assert.deepEqual(readySchema.parse({ ...ready, capacity: { cores: 2 } }).capacity, {
      cores: 2,
    });
    for (const other of ['B'.repeat(64), 'short', 42, null]) {
      const read = readySchema.parse({ ...ready, capacity: { cores: 2, bootId: other } });
      assert.equal(read.capacity?.bootId, undefined, JSON.stringify(other));
      assert.equal(read.capacity?.cores, 2);
    }
  });
});

describe("an agent's boot id on the coordinator's connection", () => {
  let dir: string;
  let agent: Agent;
  const accessKey = 'boot-id-test-access-key';

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'muster-boot-id-agent-'));
    agent = new Agent(
      compileAgentOptions({
        listen: '127.0.0.1:0',
        data: join(dir, 'agent'),
        accessKey,
        tls: false,
        taskUsers: 'off',
      }),
      pino({ level: 'silent' }),
    );
    await agent.start();
  });
  after(async () => {
    await agent.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it("is sent in ready.capacity and kept by the client: this machine's", async () => {
    const client = await AgentClient.connect({
      host: '127.0.0.1',
      port: agent.address.port,
      accessKey,
      tls: false,
      product: 'muster',
      productVersion: '0.1.0-test',
      instanceKey: newInstanceKey(),
    });
    try {
      assert.match(client.bootId ?? '', /^[0-9a-f]{64}$/);
      assert.equal(client.bootId, await readBootId());
      assert.equal(agent.identity?.bootId, client.bootId);

      // The pool's snapshot has it while connected (not in the public AgentView), null before.
      const connection = new AgentConnection(
        {
          name: 'a1',
          host: '127.0.0.1',
          port: agent.address.port,
          accessKey,
          fingerprint: null,
          tls: false,
          labels: [],
          slots: null,
          cores: null,
          createdAt: new Date(0).toISOString(),
          agentId: null,
          approved: true,
          facts: null,
        },
        {} as AgentConnectionContext, // never started: nothing of the context is used
      );
      assert.equal(snapshotOf(connection).bootId, null);
      connection.client = client;
      assert.equal(snapshotOf(connection).bootId, client.bootId);
    } finally {
      client.close();
    }
  });
});
