/**
 * The audit log against a real coordinator process over HTTPS: one change of each kind an admin
 * makes through the API (users, roles, passwords, agents, settings, extensions, secrets, the certificate,
 * a registered backup's removal) and a user's own password change each leave one row with who,
 * from which address, what and to which name, and never a password, key or secret; a viewer is
 * refused the log; `muster audit` prints it as a table and as JSON, filtered. (The backup's
 * selection, takeover and failback rows: ha-after-failback.test.ts.)
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { AuditView } from '../../src/api/views/audit.js';
import { cleanup, makeTempDir } from '../helpers/agent-process.js';
import { apiWithCa, copyTestTls, makeCertificate } from '../helpers/certificates.js';
import { runCli } from '../helpers/cli.js';
import {
  ADMIN_PASSWORD,
  killCoordinators,
  startCoordinator,
  type StartedCoordinator,
} from '../helpers/coordinator-process.js';
import { writeProbeExtension } from '../helpers/extensions.js';

const ACCESS_KEY = 'agent-access-key-never-logged';
const SECRETS = [
  ACCESS_KEY,
  'ida-password-1',
  'ida-password-2',
  'ida-password-3',
  'backup-secret-never-logged-0123456789abcdef',
  'a-secret-value-never-logged',
  ADMIN_PASSWORD,
];

let coordinator: StartedCoordinator;
let dir: string;

before(async () => {
  dir = await makeTempDir('muster-audit-');
  const files = await copyTestTls();
  coordinator = await startCoordinator({
    args: ['--tls-cert', files.certFile, '--tls-key', files.keyFile],
  });
});

after(async () => {
  await killCoordinators();
  await cleanup([dir]);
});

async function ok(
  method: string,
  path: string,
  body: unknown,
  status: number,
  by?: Api,
): Promise<void> {
  const response = await (by ?? coordinator.api)(method, path, body);
  assert.equal(response.status, status, `${method} ${path}: ${JSON.stringify(response.body)}`);
}

async function token(user: string, password: string): Promise<string> {
  const response = await coordinator.api<{ token: string }>('POST', '/login', { user, password });
  assert.equal(response.status, 200, JSON.stringify(response.body));
  return response.body.token;
}

/** The coordinator's API as the user holding `bearer`. */
type Api = StartedCoordinator['api'];

function as(bearer: string): Api {
  return async <T>(method: string, path: string, body?: unknown) => {
    const response = await fetch(`${coordinator.url}/api/v1${path}`, {
      method,
      headers: {
        authorization: `Bearer ${bearer}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(30_000),
    });
    const text = await response.text();
    return { status: response.status, body: (text ? JSON.parse(text) : null) as T };
  };
}

async function addExtension(): Promise<void> {
  const folder = await writeProbeExtension(dir, 'v1');
  const files = [];
  for (const path of ['muster-extension.json', 'package.json', 'index.js']) {
    const data = await readFile(join(folder, path));
    files.push({ path, sha256: await coordinator.putBlob(data), size: data.length, mode: 0o644 });
  }
  await ok('POST', '/extensions', { name: 'probe', version: 'v1', files }, 201);
}

describe('the audit log', () => {
  it('records one row per change, with who, from where and what, and no secret', async () => {
    await ok('POST', '/users', { name: 'ida', role: 'viewer', password: 'ida-password-1' }, 201);
    await ok('PATCH', '/users/ida', { role: 'admin' }, 200);
    await ok('PATCH', '/users/ida', { password: 'ida-password-2' }, 200);
    const ida = await token('ida', 'ida-password-2');
    await ok(
      'PUT',
      '/session/password',
      { current: 'ida-password-2', password: 'ida-password-3' },
      204,
      as(ida),
    );
    await ok(
      'POST',
      '/agents',
      { name: 'a1', address: '127.0.0.1:9', accessKey: ACCESS_KEY, tls: false, labels: ['x'] },
      201,
    );
    await ok('PATCH', '/agents/a1', { labels: ['x', 'y'] }, 200);
    await ok('DELETE', '/agents/a1', undefined, 204);
    await ok('PUT', '/settings/Agent.InstanceId', { value: 'audit-test' }, 200);
    await addExtension();
    await ok('DELETE', '/extensions/probe', undefined, 204);
    await ok('PUT', '/secrets/DEPLOY_TOKEN', { value: 'a-secret-value-never-logged' }, 201);
    await ok('DELETE', '/secrets/DEPLOY_TOKEN', undefined, 204);
    // A registration is anonymous (not recorded); removing it is an admin's change.
    await ok(
      'POST',
      '/ha/register',
      {
        name: 'b9',
        url: 'https://127.0.0.1:9',
        fingerprint: null,
        certificate: null,
        secret: 'backup-secret-never-logged-0123456789abcdef',
      },
      200,
    );
    await ok('DELETE', '/backups/b9', undefined, 204);
    await ok('DELETE', '/users/ida', undefined, 204);
    // A refused change leaves no row.
    await ok('DELETE', '/users/nobody', undefined, 404);

    const log = await coordinator.api<AuditView[]>('GET', '/audit');
    assert.equal(log.status, 200, JSON.stringify(log.body));
    const rows = [...log.body].reverse();
    assert.deepEqual(
      rows.map((r) => [r.actor, r.action, r.target]),
      [
        ['admin', 'user.create', 'ida'],
        ['admin', 'user.update', 'ida'],
        ['admin', 'user.password', 'ida'],
        ['ida', 'user.password', 'ida'],
        ['admin', 'agent.add', 'a1'],
        ['admin', 'agent.update', 'a1'],
        ['admin', 'agent.remove', 'a1'],
        ['admin', 'setting.set', 'Agent.InstanceId'],
        ['admin', 'extension.add', 'probe'],
        ['admin', 'extension.remove', 'probe'],
        ['admin', 'secret.set', 'DEPLOY_TOKEN'],
        ['admin', 'secret.delete', 'DEPLOY_TOKEN'],
        ['admin', 'backup.remove', 'b9'],
        ['admin', 'user.delete', 'ida'],
      ],
    );
    for (const row of rows) {
      assert.equal(row.ip, '127.0.0.1', JSON.stringify(row));
      assert.equal(row.actorKind, 'user');
      assert.ok(Math.abs(Date.parse(row.at) - Date.now()) < 10 * 60_000, row.at);
    }
    assert.deepEqual(rows[1]!.details, { role: 'admin', previousRole: 'viewer' });
    assert.equal(rows[2]!.details.password, 'changed');
    assert.deepEqual(rows[5]!.details, { labels: ['x', 'y'] });
    assert.deepEqual(rows[7]!.details, { value: 'audit-test' });
    assert.equal(rows[4]!.details.accessKey, 'set');
    assert.deepEqual(rows[10]!.details, { created: true });
    const text = JSON.stringify(log.body);
    for (const secret of SECRETS) assert.ok(!text.includes(secret), `${secret} in the log`);

    // Filters and paging.
    const deletes = await coordinator.api<AuditView[]>('GET', '/audit?action=user.delete');
    assert.deepEqual(
      deletes.body.map((r) => r.target),
      ['ida'],
    );
    const byIda = await coordinator.api<AuditView[]>('GET', '/audit?actor=ida');
    assert.deepEqual(
      byIda.body.map((r) => r.action),
      ['user.password'],
    );
    const page = await coordinator.api<AuditView[]>('GET', `/audit?limit=2&before=${rows[2]!.id}`);
    assert.deepEqual(
      page.body.map((r) => r.id),
      [rows[1]!.id, rows[0]!.id],
    );
  });

  it('refuses the log to a viewer, and a bad query', async () => {
    await ok('POST', '/users', { name: 'vic', role: 'viewer', password: 'vic-password-1' }, 201);
    const vic = as(await token('vic', 'vic-password-1'));
    const refused = await vic<{ error: { code: string } }>('GET', '/audit');
    assert.equal(refused.status, 403);
    assert.equal(refused.body.error.code, 'FORBIDDEN');
    const bad = await coordinator.api<{ error: { code: string } }>('GET', '/audit?limit=0');
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.code, 'VALIDATION_FAILED');
  });

  it('muster audit prints the log as a table and as JSON, filtered', async () => {
    const env = {
      MUSTER_URL: coordinator.url,
      MUSTER_TOKEN: coordinator.token,
      MUSTER_CONFIG_DIR: dir,
      NODE_EXTRA_CA_CERTS: process.env.NODE_EXTRA_CA_CERTS,
    };
    const table = await runCli(['audit', '--limit', '3'], { env, timeoutMs: 60_000 });
    assert.equal(table.code, 0, table.stderr);
    const lines = table.stdout.trim().split('\n');
    assert.match(lines[0]!, /^ID\s+WHEN\s+WHO\s+FROM\s+ACTION\s+TARGET\s+DETAILS$/);
    assert.equal(lines.length, 4);
    assert.match(lines[1]!, /\badmin\s+127\.0\.0\.1\s+user\.create\s+vic\s+role=viewer$/);

    const json = await runCli(['audit', '--json', '--action', 'agent.add'], {
      env,
      timeoutMs: 60_000,
    });
    assert.equal(json.code, 0, json.stderr);
    const rows = JSON.parse(json.stdout) as AuditView[];
    assert.deepEqual(
      rows.map((r) => [r.actor, r.ip, r.action, r.target]),
      [['admin', '127.0.0.1', 'agent.add', 'a1']],
    );
    assert.deepEqual(Object.keys(rows[0]!).sort(), [
      'action',
      'actor',
      'actorKind',
      'at',
      'details',
      'id',
      'ip',
      'target',
    ]);
  });

  it('records a replaced certificate by its fingerprint, never its key', async () => {
    const good = await makeCertificate();
    await ok('PUT', '/certificate', { certificate: good.cert, key: good.key }, 200);
    // The coordinator now serves the new certificate: trust exactly it.
    const log = await apiWithCa<AuditView[]>(
      coordinator.url,
      good.cert,
      coordinator.token,
      'GET',
      '/audit?action=certificate.replace',
    );
    assert.equal(log.status, 200, JSON.stringify(log.body));
    assert.equal(log.body.length, 1);
    const row = log.body[0]!;
    assert.equal(row.actor, 'admin');
    assert.equal(row.details.fingerprint, good.fingerprint);
    assert.ok(!JSON.stringify(row).includes('PRIVATE KEY'));
  });
});
