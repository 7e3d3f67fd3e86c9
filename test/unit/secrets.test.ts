/**
 * Secrets' parts without processes: the key file and AES-256-GCM sealing, the masking of values in
 * output split across chunks, the plan's `secrets:` field, and the routes (admins set, list and
 * delete; no answer holds a value; each change audited; a backup refuses changes; a plan naming
 * an unknown secret is refused at submit).
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, it } from 'node:test';
import { pino } from 'pino';
import { parsePlan } from '../../src/api/plan/parse.js';
import { compileCoordinatorOptions } from '../../src/coordinator/options.js';
import { createServices } from '../../src/coordinator/services.js';
import { openSqliteStore } from '../../src/coordinator/store/sqlite-store.js';
import { SecretKey } from '../../src/coordinator/secrets/secret-key.js';
import { OutputMask, StreamMask } from '../../src/coordinator/scheduler/secret-mask.js';
import { MusterError } from '../../src/protocol/errors.js';
import { backupHa, testApi, type TestApi } from '../helpers/api-context.js';

interface ErrorBody {
  error: { code: string; message: string; details?: Record<string, unknown> };
}

const dirs: string[] = [];
async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'muster-secrets-'));
  dirs.push(dir);
  return dir;
}
afterEach(async () => {
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof MusterError, String(err));
    return err.code;
  }
  assert.fail('expected an error');
}

describe('secrets: the key', () => {
  it('is made once at a first start (0600) and kept; a backup opens without making one', async () => {
    const dir = await tempDir();
    const key = await SecretKey.open(dir, true);
    const file = join(dir, 'secrets.key');
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    assert.equal((await readFile(file)).length, 32);
    const again = await SecretKey.open(dir, true);
    assert.equal(again.id, key.id);
    const backupDir = await tempDir();
    const backup = await SecretKey.open(backupDir, false);
    assert.equal(backup.id, undefined);
    assert.equal(await backup.adopt(key.exportKey()), true);
    assert.equal(await backup.adopt(key.exportKey()), false);
    assert.equal(backup.id, key.id);
    assert.equal((await stat(join(backupDir, 'secrets.key'))).mode & 0o777, 0o600);
  });

  it('seals with a fresh nonce each time; opens only under the same name and key', async () => {
    const key = await SecretKey.open(await tempDir(), true);
    const a = key.seal('TOKEN', 'hunter2-value');
    const b = key.seal('TOKEN', 'hunter2-value');
    assert.notDeepEqual(a.sealed, b.sealed);
    assert.equal(a.sealed.includes(Buffer.from('hunter2-value')), false);
    assert.equal(key.unseal('TOKEN', a), 'hunter2-value');
    // The name is the associated data: a value copied to another name does not open.
    assert.equal(
      codeOf(() => key.unseal('OTHER', a)),
      'SECRET_UNREADABLE',
    );
    const other = await SecretKey.open(await tempDir(), true);
    assert.equal(
      codeOf(() => other.unseal('TOKEN', a)),
      'SECRET_UNREADABLE',
    );
    const none = await SecretKey.open(await tempDir(), false);
    assert.equal(
      codeOf(() => none.unseal('TOKEN', a)),
      'SECRET_UNREADABLE',
    );
  });
});

describe('secrets: masking', () => {
  const run = (values: string[], chunks: string[]): string => {
    const mask = new StreamMask(
      values.map((v) => Buffer.from(v)).sort((a, b) => b.length - a.length),
    );
    const out = chunks.map((c) => mask.push(Buffer.from(c)).toString());
    return out.join('') + mask.flush().toString();
  };

  it('masks values whole, split across chunks, one byte at a time, and several in a row', () => {
    assert.equal(run(['s3cret'], ['a s3cret b']), 'a *** b');
    assert.equal(run(['s3cret'], ['a s3', 'cr', 'et b']), 'a *** b');
    assert.equal(run(['s3cret'], [...'xs3crets3cretx']), 'x******x');
    assert.equal(run(['s3cret', 'other'], ['s3c', 'ret-oth', 'er']), '***-***');
    // The longer of two overlapping values wins where both start.
    assert.equal(run(['abc', 'abcdef'], ['abcde', 'f abc']), '*** ***');
    assert.equal(run(['abc', 'abcdef'], ['ab', 'cdx abcd']), '***dx ***d');
  });

  it('keeps back only what may begin a value, and gives it back when it did not', () => {
    const mask = new StreamMask([Buffer.from('s3cret')]);
    assert.equal(mask.push(Buffer.from('hello s3c')).toString(), 'hello ');
    assert.equal(mask.push(Buffer.from('X')).toString(), 's3cX');
    assert.equal(mask.push(Buffer.from('end s')).toString(), 'end ');
    assert.equal(mask.flush().toString(), 's');
  });

  it('masks per stream, a value split inside a UTF-8 character, and error texts', () => {
    const mask = new OutputMask(['pässwörd']);
    const bytes = Buffer.from('x pässwörd y');
    const first = mask.push('stdout', bytes.subarray(0, 4));
    const other = mask.push('stderr', Buffer.from('pä'));
    const second = mask.push('stdout', bytes.subarray(4));
    assert.equal(Buffer.concat([first, second]).toString(), 'x *** y');
    assert.equal(other.length, 0);
    assert.deepEqual(
      mask.flush().map((f) => [f.stream, f.data.toString()]),
      [['stderr', 'pä']],
    );
    assert.equal(mask.text('failed: env PASS=pässwörd'), 'failed: env PASS=***');
  });

  it('withholds output it cannot mask, with one notice per stream', () => {
    const mask = OutputMask.withholding();
    assert.match(mask.push('stdout', Buffer.from('anything')).toString(), /withheld/);
    assert.equal(mask.push('stdout', Buffer.from('more')).length, 0);
  });
});

describe('secrets: the plan field', () => {
  it('takes a list of names, per task', () => {
    const plan = parsePlan(
      'tasks:\n  a:\n    run: x\n    secrets: [API_TOKEN, _X2]\n  b:\n    run: y\n',
    );
    assert.deepEqual(plan.tasks.find((t) => t.name === 'a')?.secrets, ['API_TOKEN', '_X2']);
    assert.equal(plan.tasks.find((t) => t.name === 'b')?.secrets, undefined);
  });

  it('refuses bad names, a name also in env:, and cache: true with secrets', () => {
    const problems = (text: string): string[] => {
      try {
        parsePlan(text);
      } catch (err) {
        assert.ok(err instanceof MusterError && err.code === 'PLAN_INVALID');
        return err.details?.problems as string[];
      }
      assert.fail('expected PLAN_INVALID');
    };
    assert.match(
      problems('tasks:\n  a:\n    run: x\n    secrets: [lower]\n').join('\n'),
      /tasks\.a\.secrets: "lower" is not a valid secret name .*\(line 4\)/,
    );
    assert.match(
      problems('tasks:\n  a:\n    run: x\n    env: {TOKEN: a}\n    secrets: [TOKEN]\n').join('\n'),
      /tasks\.a\.env\.TOKEN: is also in secrets:/,
    );
    assert.match(
      problems(
        'tasks:\n  a:\n    run: x\n    inputs: [f]\n    outputs: [o]\n    cache: true\n    secrets: [TOKEN]\n',
      ).join('\n'),
      /tasks\.a\.cache: a task with secrets: is never cached/,
    );
  });
});

describe('routes: secrets', () => {
  let api: TestApi | undefined;
  afterEach(async () => {
    await api?.close();
    api = undefined;
  });
  const VALUE = 'v4lue-that-must-not-leak';

  it('sets (201 then 200), lists and deletes for admins, never answering a value, audited', async () => {
    api = await testApi();
    const put = (name: string, value: string) =>
      api!.call('PUT', `/api/v1/secrets/${name}`, { token: api!.admin, body: { value } });
    const created = await put('API_TOKEN', VALUE);
    assert.equal(created.status, 201);
    assert.deepEqual(Object.keys(created.body as object).sort(), ['name', 'setAt', 'setBy']);
    assert.equal((await put('API_TOKEN', `${VALUE}-2`)).status, 200);
    const list = await api.call('GET', '/api/v1/secrets', { token: api.admin });
    assert.equal(list.status, 200);
    assert.deepEqual(
      (list.body as { name: string; setBy: string }[]).map((s) => [s.name, s.setBy]),
      [['API_TOKEN', 'admin']],
    );
    assert.equal(JSON.stringify([created.body, list.body]).includes(VALUE), false);
    const audit = await api.call('GET', '/api/v1/audit', { token: api.admin });
    const rows = audit.body as { action: string; target: string; details: object }[];
    assert.deepEqual(
      rows.map((r) => [r.action, r.target, r.details]),
      [
        ['secret.set', 'API_TOKEN', { created: false }],
        ['secret.set', 'API_TOKEN', { created: true }],
      ],
    );
    assert.equal(JSON.stringify(audit.body).includes(VALUE), false);
    const deleted = await api.call('DELETE', '/api/v1/secrets/API_TOKEN', { token: api.admin });
    assert.equal(deleted.status, 204);
    const again = await api.call('DELETE', '/api/v1/secrets/API_TOKEN', { token: api.admin });
    assert.equal(again.status, 404);
    assert.equal((again.body as ErrorBody).error.code, 'SECRET_NOT_FOUND');
    const last = await api.call('GET', '/api/v1/audit?action=secret.delete', { token: api.admin });
    assert.equal((last.body as unknown[]).length, 1);
  });

  it('refuses viewers, bad names, empty and oversized values', async () => {
    api = await testApi();
    const viewer = await api.call('PUT', '/api/v1/secrets/A', {
      token: api.viewer,
      body: { value: 'x' },
    });
    assert.equal(viewer.status, 403);
    assert.equal((await api.call('GET', '/api/v1/secrets', { token: api.viewer })).status, 403);
    for (const [name, value] of [
      ['lower', 'x'],
      ['A', ''],
      ['A', 'x'.repeat(32 * 1024 + 1)],
    ] as const) {
      const refused = await api.call('PUT', `/api/v1/secrets/${name}`, {
        token: api.admin,
        body: { value },
      });
      assert.equal(refused.status, 400, name);
      assert.equal((refused.body as ErrorBody).error.code, 'VALIDATION_FAILED');
    }
    assert.deepEqual(api.store.secrets.list(), []);
  });

  it('on a backup: lists, refuses changes with READ_ONLY', async () => {
    api = await testApi(() => ({ ha: backupHa('backup-active', 'https://primary:8000') }));
    assert.equal((await api.call('GET', '/api/v1/secrets', { token: api.admin })).status, 200);
    const put = await api.call('PUT', '/api/v1/secrets/A', {
      token: api.admin,
      body: { value: 'x' },
    });
    assert.equal((put.body as ErrorBody).error.code, 'READ_ONLY');
    const del = await api.call('DELETE', '/api/v1/secrets/A', { token: api.admin });
    assert.equal((del.body as ErrorBody).error.code, 'READ_ONLY');
  });

  it('refuses a build naming a secret that is not set, naming it (404 SECRET_NOT_FOUND)', async () => {
    api = await testApi();
    const plan = 'tasks:\n  a:\n    run: x\n    secrets: [MISSING_ONE]\n';
    const refused = await api.call('POST', '/api/v1/builds', {
      token: api.admin,
      body: { plan, files: [] },
    });
    assert.equal(refused.status, 404);
    const { error } = refused.body as ErrorBody;
    assert.equal(error.code, 'SECRET_NOT_FOUND');
    assert.match(error.message, /MISSING_ONE/);
    assert.deepEqual(error.details, { secrets: ['MISSING_ONE'] });
    await api.call('PUT', '/api/v1/secrets/MISSING_ONE', {
      token: api.admin,
      body: { value: VALUE },
    });
    const ok = await api.call('POST', '/api/v1/builds', {
      token: api.admin,
      body: { plan, files: [] },
    });
    assert.equal(ok.status, 201);
    assert.equal(JSON.stringify(ok.body).includes(VALUE), false);
    // The task's view names the secrets it is given.
    assert.deepEqual((ok.body as { tasks: { secrets?: string[] }[] }).tasks[0]?.secrets, [
      'MISSING_ONE',
    ]);
  });

  it('keeps only ciphertext in the store', async () => {
    api = await testApi();
    await api.call('PUT', '/api/v1/secrets/A', { token: api.admin, body: { value: VALUE } });
    const row = api.store.secrets.get('A');
    assert.ok(row);
    assert.equal(row.sealed.includes(Buffer.from(VALUE)), false);
  });
});

describe('secrets: a primary started with another key', () => {
  it('says which secrets it cannot read (a data dir restored without secrets.key)', async () => {
    const dir = await tempDir();
    const store = openSqliteStore(join(dir, 'muster.db'));
    try {
      const old = await SecretKey.open(await tempDir(), true);
      const { sealed, keyId } = old.seal('OLD_ONE', 'v');
      store.secrets.put({ name: 'OLD_ONE', sealed, keyId, setBy: 'ada', setAt: '2026-01-01' });
      const lines: string[] = [];
      const log = pino({ level: 'warn' }, { write: (line: string) => void lines.push(line) });
      const options = compileCoordinatorOptions({ listen: '127.0.0.1:0', data: dir });
      const services = await createServices(options, log, store);
      assert.notEqual(services.secretKey.id, keyId);
      const warned = lines
        .map((l) => JSON.parse(l) as { msg: string; secrets?: string[] })
        .filter((l) => l.msg.startsWith('secrets encrypted with another key'));
      assert.equal(warned.length, 1);
      assert.deepEqual(warned[0]?.secrets, ['OLD_ONE']);
      assert.equal(
        codeOf(() => services.secrets.values(['OLD_ONE'])),
        'SECRET_UNREADABLE',
      );
    } finally {
      store.close();
    }
  });
});
