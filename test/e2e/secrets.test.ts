/**
 * Secrets end to end (issue 14) with real processes over TLS: a primary, an agent and a selected
 * backup. A secret set with `muster secrets set` (stdin) reaches the task that names it as its
 * environment — and appears nowhere else: not in the other task's environment, not in any API
 * answer (secrets, builds, attempts, logs: masked there, also when printed in two pieces), not
 * in the coordinators' logs, not in clear in either database's files. The backup receives the
 * key over its link (the same secrets.key), and after the primary is killed it runs a task with
 * the secret itself.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { BuildView, LogsView } from '../../src/api/views/builds.js';
import {
  cleanup,
  makeTempDir,
  startAgent,
  waitFor,
  type StartedAgent,
} from '../helpers/agent-process.js';
import { runCli } from '../helpers/cli.js';
import {
  killCoordinators,
  startCoordinator,
  testTls,
  type StartedCoordinator,
} from '../helpers/coordinator-process.js';
import { FAST, status } from '../helpers/ha.js';

const VALUE = `tok-${randomBytes(12).toString('hex')}`;
/** The value printed in two writes a moment apart: two chunks of output. */
const HALF = VALUE.length / 2;

let agent: StartedAgent;
let primary: StartedCoordinator;
let backup: StartedCoordinator;
let cliDir: string;

before(async () => {
  cliDir = await makeTempDir('muster-secrets-cli-');
  agent = await startAgent({ args: ['--lease-ttl', '2s'] });
  primary = await startCoordinator({ tls: true, args: [...FAST] });
  await primary.addAgent('a0', agent);
  backup = await startCoordinator({
    tls: true,
    login: false,
    args: [
      ...FAST,
      ...['--backup-of', primary.url, '--backup-name', 'b1'],
      ...['--primary-ca', testTls().cert, '--failover-timeout', '3s'],
    ],
  });
});

after(async () => {
  await killCoordinators();
  await cleanup([cliDir]);
});

function cli(args: string[], input?: string) {
  return runCli(args, {
    env: {
      MUSTER_URL: primary.url,
      MUSTER_TOKEN: primary.token,
      MUSTER_CONFIG_DIR: cliDir,
      NODE_EXTRA_CA_CERTS: process.env.NODE_EXTRA_CA_CERTS,
    },
    ...(input === undefined ? {} : { input }),
    timeoutMs: 60_000,
  });
}

const PLAN = [
  'tasks:',
  '  use:',
  '    run: |',
  '      printf "%s" "$API_TOKEN" > out.txt',
  '      echo "whole=$API_TOKEN"',
  `      printf "split=%s" "$(printf "%s" "$API_TOKEN" | cut -c1-${HALF})"`,
  '      sleep 0.5',
  `      printf "%s\\n" "$(printf "%s" "$API_TOKEN" | cut -c${HALF + 1}-)"`,
  '      echo "err=$API_TOKEN" >&2',
  '      exit 3',
  '    outputs: [out.txt]',
  '    secrets: [API_TOKEN]',
  '  other:',
  '    run: echo "other=[${API_TOKEN:-unset}]"',
  '',
].join('\n');
// `use` fails on purpose (exit 3) after its output, which is not kept then: EXACT proves the value
// arrives exactly, in an output file (not masked: files are the task's own business).
const EXACT = [
  'tasks:',
  '  exact:',
  '    run: printf "%s" "$API_TOKEN" > out.txt',
  '    outputs: [out.txt]',
  '    secrets: [API_TOKEN]',
  '',
].join('\n');

async function runBuild(on: StartedCoordinator, plan: string): Promise<BuildView> {
  const submitted = await on.api<BuildView>('POST', '/builds', { plan, files: [] });
  assert.equal(submitted.status, 201, JSON.stringify(submitted.body));
  return on.waitForBuild(submitted.body.id, 60_000);
}

async function outputText(on: StartedCoordinator, build: BuildView, task: string) {
  const sha = build.tasks.find((t) => t.name === task)?.outputs[0]?.sha256;
  assert.ok(sha, JSON.stringify(build));
  return readFile(join(on.dataDir, 'blobs', sha.slice(0, 2), sha), 'utf8');
}

async function logText(on: StartedCoordinator, id: number, task: string): Promise<string> {
  const logs = await on.api<LogsView>('GET', `/builds/${id}/logs?task=${task}`);
  return logs.body.chunks.map((c) => c.text).join('');
}

/** Every file of the database (muster.db, its WAL and shared memory): the value's bytes? */
async function databaseHolds(on: StartedCoordinator, value: string): Promise<string[]> {
  const files = (await readdir(on.dataDir)).filter((f) => f.startsWith('muster.db'));
  assert.ok(files.includes('muster.db'));
  const found: string[] = [];
  for (const file of files) {
    const bytes = await readFile(join(on.dataDir, file));
    if (bytes.includes(Buffer.from(value))) found.push(file);
  }
  return found;
}

describe('secrets', () => {
  it('are set from stdin with the CLI, listed without values, and audited', async () => {
    const set = await cli(['secrets', 'set', 'API_TOKEN'], `${VALUE}\n`);
    assert.equal(set.code, 0, set.stderr);
    assert.equal(set.stdout, 'Secret API_TOKEN set.\n');
    const list = await cli(['secrets', 'list', '--json']);
    assert.equal(list.code, 0, list.stderr);
    const rows = JSON.parse(list.stdout) as { name: string; setBy: string }[];
    assert.deepEqual(
      rows.map((r) => [r.name, r.setBy]),
      [['API_TOKEN', 'admin']],
    );
    const table = await cli(['secrets', 'list']);
    assert.match(table.stdout, /^NAME\s+SET BY\s+SET AT\nAPI_TOKEN\s+admin\s+/);
    const audit = await primary.api<{ action: string; target: string }[]>(
      'GET',
      '/audit?action=secret.set',
    );
    assert.deepEqual(
      audit.body.map((r) => [r.action, r.target]),
      [['secret.set', 'API_TOKEN']],
    );
    // A value is never an argument: the command takes only the name.
    const extra = await cli(['secrets', 'set', 'API_TOKEN', VALUE]);
    assert.notEqual(extra.code, 0);
  });

  it('refuses a build that names a secret nobody set, naming it', async () => {
    const refused = await primary.api<{ error: { code: string; message: string } }>(
      'POST',
      '/builds',
      { plan: 'tasks:\n  a:\n    run: "true"\n    secrets: [NOPE_1]\n', files: [] },
    );
    assert.equal(refused.status, 404);
    assert.equal(refused.body.error.code, 'SECRET_NOT_FOUND');
    assert.match(refused.body.error.message, /NOPE_1/);
  });

  let used: BuildView;
  it('reach the task that names them, masked in its stdout and stderr, and no other task', async () => {
    const exact = await runBuild(primary, EXACT);
    assert.equal(exact.status, 'succeeded', JSON.stringify(exact));
    assert.equal(await outputText(primary, exact, 'exact'), VALUE);

    used = await runBuild(primary, PLAN);
    const use = used.tasks.find((t) => t.name === 'use');
    assert.equal(use?.status, 'failed');
    assert.deepEqual(use.secrets, ['API_TOKEN']);
    assert.equal(used.tasks.find((t) => t.name === 'other')?.secrets, undefined);
    assert.equal(use.exitCode, 3);
    const log = await logText(primary, used.id, 'use');
    assert.match(log, /whole=\*\*\*\n/);
    assert.match(log, /split=\*\*\*\n/);
    assert.match(log, /err=\*\*\*\n/);
    assert.match(await logText(primary, used.id, 'other'), /other=\[unset\]/);
  });

  it('appear in no API answer, no coordinator log and nowhere in clear in the database', async () => {
    const answers = await Promise.all(
      [
        '/secrets',
        '/builds',
        `/builds/${used.id}`,
        `/builds/${used.id}/attempts`,
        `/builds/${used.id}/logs`,
        '/audit',
      ].map((path) => primary.api('GET', path)),
    );
    for (const answer of answers) {
      assert.equal(answer.status, 200);
      assert.equal(JSON.stringify(answer.body).includes(VALUE), false);
    }
    assert.equal(JSON.stringify(primary.logs).includes(VALUE), false);
    assert.equal(JSON.stringify(agent.logs).includes(VALUE), false);
    assert.deepEqual(await databaseHolds(primary, VALUE), []);
  });

  it('travel to the selected backup encrypted, with the key over the link', async () => {
    await waitFor(
      async () => (await primary.api('PUT', '/backups/selected', { name: 'b1' })).status === 200,
      15_000,
      'the backup to register',
    );
    await backup.loginWhenReady();
    await waitFor(
      async () => (await backup.api<unknown[]>('GET', '/secrets')).body.length === 1,
      30_000,
      'the secret to reach the backup',
    );
    const key = await readFile(join(primary.dataDir, 'secrets.key'));
    await waitFor(
      async () =>
        (await readFile(join(backup.dataDir, 'secrets.key')).catch(() => undefined))?.equals(
          key,
        ) === true,
      30_000,
      "the primary's key to reach the backup",
    );
    const refused = await backup.api<{ error: { code: string } }>('PUT', '/secrets/OTHER', {
      value: 'x',
    });
    assert.equal(refused.body.error.code, 'READ_ONLY');
    assert.deepEqual(await databaseHolds(backup, VALUE), []);
    assert.equal(JSON.stringify(backup.logs).includes(VALUE), false);
  });

  it('reach their task on the backup after it took over', async () => {
    await primary.kill();
    await waitFor(async () => (await status(backup)).role === 'backup-active', 30_000, 'takeover');
    const exact = await runBuild(backup, EXACT);
    assert.equal(exact.status, 'succeeded', JSON.stringify(exact));
    assert.equal(await outputText(backup, exact, 'exact'), VALUE);
    const build = await runBuild(backup, PLAN);
    assert.match(await logText(backup, build.id, 'use'), /whole=\*\*\*\n/);
    assert.equal(JSON.stringify(backup.logs).includes(VALUE), false);
    assert.deepEqual(await databaseHolds(backup, VALUE), []);
  });
});
