/**
 * Backup coordinators from the CLI: `muster backup list|select|none|remove`, the backup and the
 * primary in `muster status`, and the client's switch to the selected backup when the primary
 * cannot be reached (remembered from the x-muster-backup header in <config dir>/backups.json).
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { ApiClient, type ApiEvent } from '../../src/cli/api-client.js';
import { formatBackups } from '../../src/cli/backup-command.js';
import { BackupCache, backupsPath } from '../../src/cli/backup-cache.js';
import { formatStatus } from '../../src/cli/status-command.js';
import type { BackupView } from '../../src/api/views/backups.js';
import type { BuildSummary, BuildView, LogsView } from '../../src/api/views/builds.js';
import type { StatusView } from '../../src/api/views/status.js';
import type { MusterError } from '../../src/protocol/errors.js';
import { FakeCoordinator, apiError, runCli } from '../helpers/cli-fake-coordinator.js';

const dirs: string[] = [];
const fakes: FakeCoordinator[] = [];

after(async () => {
  // Closing twice is harmless: tests close their primaries themselves.
  await Promise.all(fakes.map((f) => f.close()));
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

async function startFake(tls?: { cert: string; key: string }): Promise<FakeCoordinator> {
  const fake = await FakeCoordinator.start(tls);
  fakes.push(fake);
  return fake;
}

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'muster-cli-backup-'));
  dirs.push(dir);
  return dir;
}

async function closedUrl(): Promise<string> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return `http://127.0.0.1:${port}`;
}

function envFor(url: string, configDir: string, token = 'test-token'): NodeJS.ProcessEnv {
  return { MUSTER_URL: url, MUSTER_TOKEN: token, MUSTER_CONFIG_DIR: configDir };
}

async function readCache(configDir: string): Promise<Record<string, string>> {
  return JSON.parse(await readFile(join(configDir, 'backups.json'), 'utf8')) as Record<
    string,
    string
  >;
}

const NOW = Date.parse('2024-06-01T12:00:00.000Z');

const b1: BackupView = {
  name: 'b1',
  url: 'https://b1.example:8000',
  fingerprint: 'AB:CD:EF',
  selected: true,
  health: 'healthy',
  healthReason: null,
  lastContact: new Date(NOW - 12_000).toISOString(),
  lastReached: new Date(NOW - 1_000).toISOString(),
  replicationError: null,
  registeredAt: '2024-01-01T00:00:00.000Z',
  lagSeconds: 1.5,
};
const b2: BackupView = {
  name: 'b2',
  url: 'http://10.0.0.9:8000',
  fingerprint: null,
  selected: false,
  health: 'unreachable',
  healthReason: 'it has never called this primary',
  lastContact: null,
  lastReached: null,
  replicationError: null,
  registeredAt: '2024-01-02T00:00:00.000Z',
  lagSeconds: null,
};

const summary: BuildSummary = {
  id: 7,
  kind: 'plan',
  name: 'demo',
  status: 'succeeded',
  createdBy: 'admin',
  createdAt: '2024-01-01T12:00:00.000Z',
  startedAt: '2024-01-01T12:00:01.000Z',
  finishedAt: '2024-01-01T12:00:05.000Z',
  counts: { total: 1, succeeded: 1, failed: 0, running: 0, pending: 0 },
};

const primaryStatus: StatusView = {
  role: 'primary',
  version: '0.1.0',
  instanceId: 'i-1',
  term: 3,
  agents: { total: 2, connected: 2 },
  builds: { queued: 1, running: 0 },
  backup: {
    name: 'b1',
    url: 'https://b1.example:8000',
    health: 'healthy',
    healthReason: null,
    lastContact: new Date(NOW - 2_000).toISOString(),
    lagSeconds: 0.5,
  },
};

/** A fake coordinator with backups b1 and b2 that checks roles like the real one. */
async function primaryWithBackups(): Promise<FakeCoordinator> {
  const fake = await startFake();
  let list = [b1, b2];
  fake.on('GET', '/backups', () => ({ json: list }));
  fake.on('PUT', '/backups/selected', (req) => {
    if (req.headers.authorization === 'Bearer viewer-token') {
      return apiError(403, 'FORBIDDEN', 'viewers cannot change backups');
    }
    const { name } = req.json<{ name: string | null }>();
    if (name !== null && !list.some((b) => b.name === name)) {
      return apiError(404, 'NOT_FOUND', `no backup ${name}: muster backup list shows them`);
    }
    list = list.map((b) => ({ ...b, selected: b.name === name }));
    return { json: list };
  });
  fake.on('DELETE', '/backups/:name', (req) => {
    if (!list.some((b) => b.name === req.params.name)) {
      return apiError(404, 'NOT_FOUND', `no backup ${req.params.name}`);
    }
    list = list.filter((b) => b.name !== req.params.name);
    return { status: 204 };
  });
  return fake;
}

describe('muster backup', () => {
  it('list --json prints name, url, selected, health and lastContact of each', async () => {
    const fake = await primaryWithBackups();
    const result = await runCli(['backup', 'list', '--json'], {
      env: envFor(fake.url, await tempDir()),
    });
    assert.equal(result.code, 0, result.stderr);
    const list = JSON.parse(result.stdout) as Record<string, unknown>[];
    assert.deepEqual(
      list.map((b) => ({
        name: b.name,
        url: b.url,
        selected: b.selected,
        health: b.health,
        lastContact: b.lastContact,
      })),
      [
        { name: 'b1', url: b1.url, selected: true, health: 'healthy', lastContact: b1.lastContact },
        { name: 'b2', url: b2.url, selected: false, health: 'unreachable', lastContact: null },
      ],
    );
    assert.deepEqual(list, [b1, b2]);
    assert.equal(fake.calls('GET', '/backups')[0]?.headers.authorization, 'Bearer test-token');
  });

  it('list prints a table, or how to register a backup when there is none', async () => {
    assert.equal(
      formatBackups([b1, b2], NOW),
      [
        'NAME  URL                      SELECTED  HEALTH       LAST CONTACT  LAG    FINGERPRINT',
        'b1    https://b1.example:8000  yes       healthy      12 s ago      1.5 s  AB:CD:EF',
        'b2    http://10.0.0.9:8000     -         unreachable  never         -      -',
        '',
        'b2: unreachable: it has never called this primary',
        '',
      ].join('\n'),
    );
    assert.match(
      formatBackups([{ ...b2 }], NOW),
      /\nNone is selected: muster backup select NAME chooses the one that may take over\.\n$/,
    );
    // After an automatic deselection it says which, when and why.
    assert.match(
      formatBackups([{ ...b2 }], NOW, {
        name: 'b2',
        at: new Date(NOW - 60_000).toISOString(),
        reason: 'not reached for 60 min',
      }),
      /\nNone is selected: b2 was deselected automatically at .+ \(not reached for 60 min\)\. muster backup select NAME/,
    );

    const fake = await primaryWithBackups();
    const table = await runCli(['backup', 'list'], { env: envFor(fake.url, await tempDir()) });
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /^NAME +URL +SELECTED +HEALTH +LAST CONTACT +LAG +FINGERPRINT$/m);
    assert.match(
      table.stdout,
      /^b1 +https:\/\/b1\.example:8000 +yes +healthy +\S.* ago +1\.5 s +AB:CD:EF$/m,
    );
    assert.match(table.stdout, /^b2 +http:\/\/10\.0\.0\.9:8000 +- +unreachable +never +- +-$/m);

    fake.on('GET', '/backups', () => ({ json: [] }));
    const empty = await runCli(['backup', 'list'], { env: envFor(fake.url, await tempDir()) });
    assert.equal(empty.code, 0, empty.stderr);
    assert.equal(
      empty.stdout,
      'No backups registered: start muster coordinator --backup-of PRIMARY_URL on the backup machine: it registers itself.\n',
    );
  });

  it('select and none send the name (or null) and say what changed; --json prints the list', async () => {
    const fake = await primaryWithBackups();
    const configDir = await tempDir();
    const select = await runCli(['backup', 'select', 'b2'], { env: envFor(fake.url, configDir) });
    assert.equal(select.code, 0, select.stderr);
    assert.deepEqual(fake.calls('PUT', '/backups/selected')[0]?.json(), { name: 'b2' });
    assert.equal(
      select.stdout,
      "Selected backup b2: it now receives this coordinator's state and may take over.\n" +
        'It is unreachable at the moment: it has never called this primary; check that it runs at http://10.0.0.9:8000.\n',
    );

    const json = await runCli(['backup', 'select', 'b1', '--json'], {
      env: envFor(fake.url, configDir),
    });
    assert.equal(json.code, 0, json.stderr);
    const list = JSON.parse(json.stdout) as BackupView[];
    assert.deepEqual(
      list.map((b) => [b.name, b.selected]),
      [
        ['b1', true],
        ['b2', false],
      ],
    );

    const none = await runCli(['backup', 'none'], { env: envFor(fake.url, configDir) });
    assert.equal(none.code, 0, none.stderr);
    assert.deepEqual(fake.calls('PUT', '/backups/selected')[2]?.json(), { name: null });
    assert.match(none.stdout, /^No backup selected: /);

    const noneJson = await runCli(['backup', 'none', '--json'], {
      env: envFor(fake.url, configDir),
    });
    assert.equal(noneJson.code, 0, noneJson.stderr);
    assert.deepEqual(
      (JSON.parse(noneJson.stdout) as BackupView[]).map((b) => b.selected),
      [false, false],
    );
  });

  it('remove deletes a registration', async () => {
    const fake = await primaryWithBackups();
    const result = await runCli(['backup', 'remove', 'b2'], {
      env: envFor(fake.url, await tempDir()),
    });
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, 'Removed backup b2\n');
    assert.equal(fake.calls('DELETE', '/backups/b2').length, 1);
  });

  it('refusals exit 2 with their code: unknown name, a viewer, a backup coordinator', async () => {
    const fake = await primaryWithBackups();
    const configDir = await tempDir();
    const unknown = await runCli(['backup', 'select', 'nope'], {
      env: envFor(fake.url, configDir),
    });
    assert.equal(unknown.code, 2);
    assert.equal(unknown.stdout, '');
    assert.equal(
      unknown.stderr,
      'muster: no backup nope: muster backup list shows them [NOT_FOUND]\n',
    );

    const viewer = await runCli(['backup', 'none'], {
      env: envFor(fake.url, configDir, 'viewer-token'),
    });
    assert.equal(viewer.code, 2);
    assert.match(viewer.stderr, /^muster: viewers cannot change backups \[FORBIDDEN\]$/m);

    const backup = await startFake();
    backup.on('PUT', '/backups/selected', () =>
      apiError(403, 'READ_ONLY', 'this coordinator is a backup: select backups on the primary'),
    );
    const readOnly = await runCli(['backup', 'select', 'b1'], {
      env: envFor(backup.url, configDir),
    });
    assert.equal(readOnly.code, 2);
    assert.match(readOnly.stderr, /select backups on the primary \[READ_ONLY\]$/m);
  });

  it('usage errors exit 2 before anything is sent', async () => {
    const fake = await primaryWithBackups();
    const result = await runCli(['backup', 'select'], { env: envFor(fake.url, await tempDir()) });
    assert.equal(result.code, 2);
    assert.match(result.stderr, /missing required argument 'name'/);
    assert.equal(fake.requests.length, 0);
  });
});

describe('muster status and backups', () => {
  it('on a primary: the term and the selected backup, or none', async () => {
    assert.equal(
      formatStatus(primaryStatus, 'http://p:8000', NOW),
      [
        'Coordinator  http://p:8000',
        'Role         primary',
        'Term         3',
        'Version      0.1.0',
        'Instance id  i-1',
        'Agents       2 connected of 2',
        'Builds       0 running, 1 queued',
        'Backup       b1 at https://b1.example:8000: healthy, last contact 2.0 s ago, lag 0.5 s',
        '',
      ].join('\n'),
    );
    assert.match(
      formatStatus({ ...primaryStatus, backup: null }, 'http://p:8000', NOW),
      /^Backup +none selected \(muster backup list, muster backup select NAME\)$/m,
    );

    const fake = await startFake();
    fake.on('GET', '/status', () => ({ json: primaryStatus }));
    const configDir = await tempDir();
    const human = await runCli(['status'], { env: envFor(fake.url, configDir) });
    assert.equal(human.code, 0, human.stderr);
    assert.match(human.stdout, /^Term +3$/m);
    assert.match(
      human.stdout,
      /^Backup +b1 at https:\/\/b1\.example:8000: healthy, last contact .* ago, lag 0\.5 s$/m,
    );
    const json = await runCli(['status', '--json'], { env: envFor(fake.url, configDir) });
    assert.equal(json.code, 0, json.stderr);
    assert.deepEqual(JSON.parse(json.stdout), primaryStatus);
  });

  it('on a backup: its primary, whether it is selected, and since when it is active', async () => {
    const standby: StatusView = {
      role: 'backup-standby',
      version: '0.1.0',
      instanceId: 'i-1',
      term: 3,
      agents: { total: 2, connected: 0 },
      builds: { queued: 0, running: 0 },
      primary: {
        url: 'http://p:8000',
        reachable: true,
        lastContact: new Date(NOW - 1_000).toISOString(),
        lagSeconds: 0.2,
        selected: false,
        state: 'standby',
        activeSince: null,
        replicationError: null,
        seenByPrimary: null,
      },
    };
    const text = formatStatus(standby, 'http://b1:8000', NOW);
    assert.match(text, /^Role +backup, standing by/m);
    assert.match(
      text,
      /^Primary +http:\/\/p:8000: reachable, last contact 1\.0 s ago, lag 0\.2 s$/m,
    );
    assert.match(text, /^ +not selected: this backup gets no state and cannot take over/m);
    assert.doesNotMatch(text, /^Active/m);
    assert.doesNotMatch(text, /^Backup/m);

    const active: StatusView = {
      ...standby,
      role: 'backup-active',
      term: 4,
      primary: {
        url: 'http://p:8000',
        reachable: false,
        lastContact: new Date(NOW - 95_000).toISOString(),
        lagSeconds: null,
        selected: true,
        state: 'active',
        activeSince: new Date(NOW - 65_000).toISOString(),
        replicationError: null,
        seenByPrimary: null,
      },
    };
    const activeText = formatStatus(active, 'http://b1:8000', NOW);
    assert.match(
      activeText,
      /^Primary +http:\/\/p:8000: unreachable, last contact 1 min 35 s ago, lag unknown/m,
    );
    assert.match(activeText, /^Active +since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d \(1 min 05 s\)$/m);
    assert.doesNotMatch(activeText, /not selected/);

    const fake = await startFake();
    fake.on('GET', '/status', () => ({ json: active }));
    const configDir = await tempDir();
    const human = await runCli(['status'], { env: envFor(fake.url, configDir) });
    assert.equal(human.code, 0, human.stderr);
    assert.match(human.stdout, /^Term +4$/m);
    assert.match(human.stdout, /^Primary +http:\/\/p:8000: unreachable, last contact /m);
    assert.match(human.stdout, /^Active +since /m);
    const json = await runCli(['status', '--json'], { env: envFor(fake.url, configDir) });
    assert.deepEqual(JSON.parse(json.stdout), active);
  });
});

describe('the backup cache', () => {
  it('remembers the header of successful answers (0600), writes only changes, forgets on none', async () => {
    const primary = await startFake();
    primary.on('GET', '/status', () => ({ json: primaryStatus }));
    primary.on('GET', '/agents', () => apiError(401, 'UNAUTHORIZED', 'no'));
    const configDir = join(await tempDir(), 'config');
    const path = backupsPath({ MUSTER_CONFIG_DIR: configDir });
    const client = new ApiClient({
      url: `${primary.url}/`,
      token: 't',
      backups: new BackupCache(path),
    });

    // An answer without the header, and no file yet: nothing to forget, nothing written.
    await client.status();
    await assert.rejects(stat(path), { code: 'ENOENT' });

    primary.headers = { 'x-muster-backup': 'http://127.0.0.1:9/' };
    // Failed answers teach nothing.
    await assert.rejects(client.listAgents(), { code: 'UNAUTHORIZED' });
    await assert.rejects(stat(path), { code: 'ENOENT' });

    await client.status();
    assert.deepEqual(await readCache(configDir), { [primary.url]: 'http://127.0.0.1:9' });
    assert.equal((await stat(path)).mode & 0o777, 0o600);
    assert.equal((await stat(configDir)).mode & 0o777, 0o700);

    // The same backup again, from this client and a new one (another process): not rewritten.
    const written = await stat(path);
    await client.status();
    await new ApiClient({ url: primary.url, token: 't', backups: new BackupCache(path) }).status();
    assert.equal((await stat(path)).ino, written.ino);

    // Entries of other primaries stay when this one changes.
    await writeFile(
      path,
      JSON.stringify({ [primary.url]: 'http://127.0.0.1:9', 'http://other:1': 'http://b:2' }),
    );
    const fresh = new ApiClient({ url: primary.url, token: 't', backups: new BackupCache(path) });
    primary.headers = {};
    await fresh.status();
    assert.deepEqual(await readCache(configDir), { 'http://other:1': 'http://b:2' });
  });

  it('never learns a plain-HTTP backup from an HTTPS primary (the token would go readable)', async () => {
    const cert = process.env.MUSTER_TEST_TLS_CERT;
    const key = process.env.MUSTER_TEST_TLS_KEY;
    assert.ok(cert && key, 'run with scripts/run-tests.js (it makes the test certificate)');
    const primary = await startFake({
      cert: await readFile(cert, 'utf8'),
      key: await readFile(key, 'utf8'),
    });
    primary.on('GET', '/status', () => ({ json: primaryStatus }));
    const configDir = join(await tempDir(), 'config');
    const path = backupsPath({ MUSTER_CONFIG_DIR: configDir });
    const client = new ApiClient({ url: primary.url, token: 't', backups: new BackupCache(path) });
    primary.headers = { 'x-muster-backup': 'http://127.0.0.1:9/' };
    await client.status();
    await assert.rejects(stat(path), { code: 'ENOENT' }, 'an http backup is not remembered');
    primary.headers = { 'x-muster-backup': 'https://127.0.0.1:9/' };
    await client.status();
    assert.deepEqual(await readCache(configDir), { [primary.url]: 'https://127.0.0.1:9' });
  });

  it('a broken file counts as empty and an unwritable one is no error', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, 'backups.json'), 'not json');
    const cache = new BackupCache(join(dir, 'backups.json'));
    assert.equal(await cache.get('http://p:1'), undefined);
    await cache.set('http://p:1', 'http://b:2');
    assert.equal(await cache.get('http://p:1'), 'http://b:2');

    // A file where the directory should be: writing fails, quietly; this process still knows.
    await writeFile(join(dir, 'file'), '');
    const unwritable = new BackupCache(join(dir, 'file', 'backups.json'));
    await unwritable.set('http://p:1', 'http://b:2');
    assert.equal(await unwritable.get('http://p:1'), 'http://b:2');
    assert.equal(
      await new BackupCache(join(dir, 'file', 'backups.json')).get('http://p:1'),
      undefined,
    );
  });
});

describe('switching to the backup', () => {
  /**
   * A primary that names `backup` in its header, learnt by one command run with `env` (plus
   * MUSTER_URL), then stopped; returns its URL.
   */
  async function primaryGone(backup: FakeCoordinator, env: NodeJS.ProcessEnv): Promise<string> {
    const primary = await startFake();
    primary.headers = { 'x-muster-backup': backup.url };
    primary.on('GET', '/builds', () => ({ json: [] }));
    const first = await runCli(['builds', 'list', '--json'], {
      env: { ...env, MUSTER_URL: primary.url },
    });
    assert.equal(first.code, 0, first.stderr);
    assert.equal(first.stderr, '');
    assert.deepEqual(JSON.parse(first.stdout), []);
    await primary.close();
    return primary.url;
  }

  function serveBackup(backup: FakeCoordinator): void {
    backup.on('GET', '/builds', () => ({ json: [summary] }));
    const build: BuildView = {
      ...summary,
      error: null,
      tasks: [],
      summary: null,
    };
    backup.on('GET', '/builds/:id', () => ({ json: build }));
    backup.on('GET', '/builds/:id/logs', (req) => {
      const after = Number(req.query.get('after') ?? 0);
      const chunks: LogsView['chunks'] =
        after === 0
          ? [{ id: 1, task: 'compile', attempt: 1, stream: 'stdout', text: 'from b\n', at: '' }]
          : [];
      return { json: { chunks, next: after === 0 ? 1 : after } satisfies LogsView };
    });
    backup.on('GET', '/events', (_req, res) => {
      backup.sse(res);
      return undefined;
    });
  }

  it('with MUSTER_URL: the next command gets its answer from the backup and says so once', async () => {
    const backup = await startFake();
    serveBackup(backup);
    const configDir = await tempDir();
    const env = { MUSTER_TOKEN: 'tok-env', MUSTER_CONFIG_DIR: configDir };
    const primaryUrl = await primaryGone(backup, env);
    assert.deepEqual(await readCache(configDir), { [primaryUrl]: backup.url });
    const note = `muster: ${primaryUrl} is unreachable; using its backup ${backup.url}\n`;

    const list = await runCli(['builds', 'list', '--json'], {
      env: { ...env, MUSTER_URL: primaryUrl },
    });
    assert.equal(list.code, 0, list.stderr);
    assert.deepEqual(JSON.parse(list.stdout), [summary]);
    assert.equal(list.stderr, note);
    assert.equal(backup.calls('GET', '/builds')[0]?.headers.authorization, 'Bearer tok-env');

    // Several requests, the event stream first: all at the backup, one note.
    const logs = await runCli(['builds', 'logs', '7', '--follow'], {
      env: { ...env, MUSTER_URL: primaryUrl },
    });
    assert.equal(logs.code, 0, logs.stderr);
    assert.equal(logs.stdout, 'compile | from b\n');
    assert.equal(logs.stderr, note);
    assert.equal(backup.calls('GET', '/events')[0]?.query.get('build'), '7');
    assert.ok(backup.calls('GET', '/builds/7').length >= 1);

    const status = await runCli(['status'], { env: { ...env, MUSTER_URL: primaryUrl } });
    // The fake backup has no /status: its NOT_FOUND is reported (it answered, so it is used).
    assert.equal(status.code, 2);
    assert.equal(status.stderr.split(note).length - 1, 1, status.stderr);
    assert.match(status.stderr, /no route GET \/api\/v1\/status \[NOT_FOUND\]/);
    backup.on('GET', '/status', () => ({
      json: { ...primaryStatus, role: 'backup-active', backup: undefined },
    }));
    const human = await runCli(['status'], { env: { ...env, MUSTER_URL: primaryUrl } });
    assert.equal(human.code, 0, human.stderr);
    assert.match(
      human.stdout,
      new RegExp(
        `^Coordinator +${backup.url} \\(the backup of ${primaryUrl}, which is unreachable\\)$`,
        'm',
      ),
    );
    // Said once: the Coordinator line says it, so the note on stderr does not repeat it.
    assert.equal(human.stderr, '');
    assert.equal((human.stdout + human.stderr).split('unreachable').length - 1, 1, human.stdout);
    const json = await runCli(['status', '--json'], { env: { ...env, MUSTER_URL: primaryUrl } });
    assert.equal(json.code, 0, json.stderr);
    assert.equal(json.stderr, note);
  });

  it('with the credentials of muster login as well', async () => {
    const backup = await startFake();
    serveBackup(backup);
    const configDir = await tempDir();
    const primary = await startFake();
    primary.headers = { 'x-muster-backup': `${backup.url}/` };
    primary.on('GET', '/builds', () => ({ json: [] }));
    await mkdir(configDir, { recursive: true });
    await writeFile(
      join(configDir, 'credentials.json'),
      JSON.stringify({ url: primary.url, token: 'tok-file', user: 'alice' }),
      { mode: 0o600 },
    );
    const env = { MUSTER_CONFIG_DIR: configDir };
    const first = await runCli(['builds', 'list', '--json'], { env });
    assert.equal(first.code, 0, first.stderr);
    assert.deepEqual(await readCache(configDir), { [primary.url]: backup.url });
    await primary.close();

    const list = await runCli(['builds', 'list'], { env });
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, /^7 +succeeded +1\/1 /m);
    assert.equal(
      list.stderr,
      `muster: ${primary.url} is unreachable; using its backup ${backup.url}\n`,
    );
    assert.equal(backup.calls('GET', '/builds')[0]?.headers.authorization, 'Bearer tok-file');
  });

  it('a backup standing by: the primary is reported unreachable (exit 3), with why', async () => {
    const backup = await startFake();
    backup.on('GET', '/builds', () =>
      apiError(503, 'STANDBY', 'this coordinator is a backup standing by: use the primary'),
    );
    const configDir = await tempDir();
    const env = { MUSTER_TOKEN: 'test-token', MUSTER_CONFIG_DIR: configDir };
    const primaryUrl = await primaryGone(backup, env);
    const result = await runCli(['builds', 'list'], { env: { ...env, MUSTER_URL: primaryUrl } });
    assert.equal(result.code, 3, result.stderr);
    assert.equal(result.stdout, '');
    assert.match(
      result.stderr,
      new RegExp(
        `^muster: cannot reach the coordinator at ${primaryUrl}: connection refused.*; its backup ${backup.url} is standing by and has not taken over.* \\[UNREACHABLE\\]\\n$`,
      ),
    );
    assert.doesNotMatch(result.stderr, /using its backup/);
    assert.equal(backup.calls('GET', '/builds').length, 1);
  });

  it('a standby answers reads; a build it refuses is still the primary being unreachable', async () => {
    // Reads work on a backup standing by, so `muster run` switches while checking its inputs;
    // the build itself is refused with STANDBY, which must not look like a usage error.
    const backup = await startFake();
    backup.on('POST', '/blobs/missing', () => ({ json: { missing: [] } }));
    backup.on('POST', '/builds', () =>
      apiError(
        503,
        'STANDBY',
        'this is a backup coordinator standing by: run builds on the primary',
      ),
    );
    const configDir = await tempDir();
    const env = { MUSTER_TOKEN: 'test-token', MUSTER_CONFIG_DIR: configDir };
    const primaryUrl = await primaryGone(backup, env);
    const project = await tempDir();
    await writeFile(join(project, 'muster.yml'), 'tasks:\n  a:\n    run: cat x\n    inputs: [x]\n');
    await writeFile(join(project, 'x'), 'x\n');
    const result = await runCli(['run', '--detach'], {
      cwd: project,
      env: { ...env, MUSTER_URL: primaryUrl },
    });
    assert.equal(result.code, 3, result.stderr);
    assert.equal(backup.calls('POST', '/blobs/missing').length, 1);
    assert.equal(backup.calls('POST', '/builds').length, 1);
    assert.match(
      result.stderr,
      new RegExp(
        `^muster: cannot reach the coordinator at ${primaryUrl}: connection refused.*; its backup ${backup.url} is standing by and has not taken over.* \\[UNREACHABLE\\]$`,
        'm',
      ),
    );
  });

  it('a backup that cannot be reached either: exit 3 naming both', async () => {
    const configDir = await tempDir();
    const primaryUrl = await closedUrl();
    const backupUrl = await closedUrl();
    await writeFile(join(configDir, 'backups.json'), JSON.stringify({ [primaryUrl]: backupUrl }));
    const result = await runCli(['builds', 'list'], { env: envFor(primaryUrl, configDir) });
    assert.equal(result.code, 3, result.stderr);
    assert.match(
      result.stderr,
      new RegExp(
        `cannot reach the coordinator at ${primaryUrl}: connection refused.*; nor its backup: cannot reach the coordinator at ${backupUrl}: connection refused.*\\[UNREACHABLE\\]`,
      ),
    );
    assert.doesNotMatch(result.stderr, /using its backup/);
  });

  it('no switching without a remembered backup, nor when the primary answers an error', async () => {
    const backup = await startFake();
    serveBackup(backup);
    const primary = await startFake();
    primary.on('GET', '/builds', () => apiError(502, 'UNREACHABLE', 'an agent is unreachable'));
    const configDir = await tempDir();
    await writeFile(join(configDir, 'backups.json'), JSON.stringify({ [primary.url]: backup.url }));
    const answered = await runCli(['builds', 'list'], { env: envFor(primary.url, configDir) });
    assert.equal(answered.code, 3);
    assert.match(answered.stderr, /^muster: an agent is unreachable \[UNREACHABLE\]\n$/);
    assert.equal(backup.requests.length, 0);

    const unknownUrl = await closedUrl();
    const none = await runCli(['builds', 'list'], { env: envFor(unknownUrl, configDir) });
    assert.equal(none.code, 3);
    assert.doesNotMatch(none.stderr, /backup/);
    assert.equal(backup.requests.length, 0);
  });

  it('goes back to the primary once its backup stands by again (a failback), and over again', async () => {
    // A process that outlives a failover and its failback (`muster build`, the compile service):
    // records sent to the backup while it is active, to the primary again after the failback.
    const primary = await startFake();
    const backup = await startFake();
    primary.headers = { 'x-muster-backup': backup.url };
    let primaryUp = true;
    let backupActive = false;
    // A primary that is down: a 502 with no body (a proxy in front of it) is as good as no answer.
    primary.on('POST', '/compile-sessions/:id/records', () =>
      primaryUp ? { status: 204 } : { status: 502 },
    );
    backup.on('POST', '/compile-sessions/:id/records', () =>
      backupActive
        ? { status: 204 }
        : apiError(503, 'STANDBY', 'this coordinator is a backup standing by: use the primary'),
    );
    const remembered = new Map<string, string>();
    const notes: string[] = [];
    const client = new ApiClient({
      url: primary.url,
      token: 't',
      backups: {
        get: async (p) => remembered.get(p),
        set: async (p, b) => void (b === undefined ? remembered.delete(p) : remembered.set(p, b)),
      },
      notify: (text) => notes.push(text),
    });
    const records = (): number[] => [
      primary.calls('POST', '/compile-sessions/7/records').length,
      backup.calls('POST', '/compile-sessions/7/records').length,
    ];
    await client.recordCompileJobs('7', []);
    assert.deepEqual(remembered, new Map([[primary.url, backup.url]]));

    // The failover: the primary is down, the backup takes over.
    primaryUp = false;
    backupActive = true;
    await client.recordCompileJobs('7', []);
    assert.equal(client.usingBackup, backup.url);
    assert.deepEqual(records(), [2, 1]);

    // The failback: the backup stands by again, the primary answers: it is used from now on.
    backupActive = false;
    primaryUp = true;
    await client.recordCompileJobs('7', []);
    assert.equal(client.usingBackup, undefined);
    assert.equal(client.url, primary.url);
    assert.deepEqual(records(), [3, 2]);
    await client.recordCompileJobs('7', []);
    assert.deepEqual(records(), [4, 2], 'straight to the primary');

    // A second failover is followed (and said) again.
    primaryUp = false;
    backupActive = true;
    await client.recordCompileJobs('7', []);
    assert.equal(client.usingBackup, backup.url);
    assert.deepEqual(records(), [5, 3]);
    assert.deepEqual(notes, [
      `muster: ${primary.url} is unreachable; using its backup ${backup.url}\n`,
      `muster: ${backup.url} stands by again; using ${primary.url}\n`,
      `muster: ${primary.url} is unreachable; using its backup ${backup.url}\n`,
    ]);

    // A backup standing by while the primary is still down: the primary is reported unreachable.
    backupActive = false;
    await assert.rejects(client.recordCompileJobs('7', []), (err: MusterError) => {
      assert.equal(err.code, 'UNREACHABLE');
      assert.match(err.message, /is standing by and has not taken over/);
      return true;
    });
    assert.equal(client.usingBackup, backup.url);
  });

  it('the API client switches event streams too, and stays with the backup', async () => {
    const backup = await startFake();
    backup.on('GET', '/events', (_req, res) => {
      const sse = backup.sse(res);
      sse.send('build', { id: 3, status: 'running' });
      return undefined;
    });
    backup.on('GET', '/builds/:id', () => apiError(404, 'NOT_FOUND', 'no build 3 here'));
    const primaryUrl = await closedUrl();
    const notes: string[] = [];
    const remembered = new Map([[primaryUrl, backup.url]]);
    let learnt = 0;
    const client = new ApiClient({
      url: primaryUrl,
      token: 't',
      backups: {
        get: async (p) => remembered.get(p),
        set: async () => void learnt++,
      },
      notify: (text) => notes.push(text),
    });
    const stream = await client.openEvents(3);
    const seen: ApiEvent[] = [];
    for await (const event of stream) {
      seen.push(event);
      stream.close();
    }
    assert.deepEqual(seen, [{ event: 'build', data: { id: 3, status: 'running' }, id: undefined }]);
    assert.equal(client.url, backup.url);
    assert.equal(client.usingBackup, backup.url);
    assert.equal(client.configuredUrl, primaryUrl);
    assert.equal(backup.calls('GET', '/events')[0]?.headers.authorization, 'Bearer t');

    await assert.rejects(client.getBuild(3), (err: MusterError) => {
      assert.equal(err.code, 'NOT_FOUND');
      return true;
    });
    assert.deepEqual(notes, [
      `muster: ${primaryUrl} is unreachable; using its backup ${backup.url}\n`,
    ]);
    assert.equal(learnt, 0, 'nothing is learnt from the answers of the backup');
  });
});
