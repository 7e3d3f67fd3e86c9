/**
 * The coordinator's HTTP edge against hostile clients, with real coordinator processes over TLS
 * on loopback: clients that send a login or a request head a byte at a time (cut off by
 * --request-timeout) while the event stream, the backups' long poll and a slow admin upload
 * outlive that timeout; requests in absolute form and other spellings that must not skip the
 * auth check; small bodies on anonymous routes; failed logins limited per user name and per
 * address block (sources 127.0.x.y, all loopback); unknown user names costing a scrypt like
 * known ones; password hashes upgraded at login; security headers on every kind of response;
 * the data dir's modes; blob uploads limited to builders and by a quota, and the sweep of blobs
 * nothing references (which keeps a build's inputs and outputs, also on a backup).
 *
 * Every wait is bounded; after each case the coordinator still serves a legitimate client.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { chmod, mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { createServer as createHttpsServer, request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { after, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import type { ApiErrorBody } from '../../src/api/error-body.js';
import type { BuildView } from '../../src/api/views/builds.js';
import type { LoginView } from '../../src/api/views/users.js';
import type { StatusView } from '../../src/api/views/status.js';
import { cleanup, makeTempDir, startAgent, waitFor } from '../helpers/agent-process.js';
import {
  ADMIN_PASSWORD,
  killCoordinators,
  restartCoordinator,
  startCoordinator,
  testTls,
  type StartedCoordinator,
} from '../helpers/coordinator-process.js';
import { FAST, selectBackup, startBackup } from '../helpers/ha.js';

/** Per-test bound; nothing comes near it unless something hangs. */
const T = { timeout: 120_000 };
const KiB = 1024;
const MiB = 1024 * KiB;

const dirs: string[] = [];

after(async () => {
  await killCoordinators();
  await cleanup(dirs);
});

async function tempDir(prefix: string): Promise<string> {
  const dir = await makeTempDir(prefix);
  dirs.push(dir);
  return dir;
}

const sha = (data: Buffer | string): string => createHash('sha256').update(data).digest('hex');

// ---- helpers ----------------------------------------------------------------------------------

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

/** One HTTPS request on a connection of its own, optionally from another loopback address. */
function request(
  base: string,
  method: string,
  path: string,
  options: {
    token?: string;
    json?: unknown;
    body?: Buffer | string;
    headers?: Record<string, string | number>;
    from?: string;
  } = {},
): Promise<Answer> {
  const headers: Record<string, string | number> = { ...options.headers };
  if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`;
  const body = options.json !== undefined ? JSON.stringify(options.json) : options.body;
  if (options.json !== undefined) headers['content-type'] = 'application/json';
  return new Promise((resolve, reject) => {
    const url = new URL(base);
    const req = httpsRequest({
      host: url.hostname,
      port: url.port,
      // As given: new URL() would read "//api/..." as a host name.
      path,
      method,
      headers,
      agent: false,
      timeout: 30_000,
      ...(options.from ? { localAddress: options.from } : {}),
    });
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (d: Buffer) => chunks.push(d));
      res.on('error', reject);
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          text: Buffer.concat(chunks).toString('utf8'),
        }),
      );
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${path}: no answer in time`)));
    req.on('error', reject);
    req.end(body);
  });
}

function assertError(
  answer: Answer,
  status: number,
  code: string,
  what = '',
): ApiErrorBody['error'] {
  assert.equal(answer.status, status, `${what} expected ${status} ${code}, got: ${answer.text}`);
  const error = (JSON.parse(answer.text) as Partial<ApiErrorBody>).error;
  assert.ok(error, `no { error } in ${answer.text}`);
  assert.equal(error.code, code, `${what} ${answer.text}`);
  assert.ok(error.message.length > 0);
  return error;
}

/** A legitimate client still gets through: log in afresh, read the status. */
async function assertServes(c: StartedCoordinator): Promise<void> {
  const login = await request(c.url, 'POST', '/api/v1/login', {
    json: { user: 'admin', password: ADMIN_PASSWORD },
  });
  assert.equal(login.status, 200, login.text);
  const token = (JSON.parse(login.text) as LoginView).token;
  const status = await request(c.url, 'GET', '/api/v1/status', { token });
  assert.equal(status.status, 200, status.text);
  assert.equal((JSON.parse(status.text) as StatusView).role, 'primary');
}

function hostPort(c: StartedCoordinator): { host: string; port: number } {
  const url = new URL(c.url);
  return { host: url.hostname, port: Number(url.port) };
}

function openTls(c: StartedCoordinator): Promise<TLSSocket> {
  const { host, port } = hostPort(c);
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host, port }, () => resolve(socket));
    socket.once('error', reject);
  });
}

/** Sends exactly `text` on a TLS connection of its own; returns all the server sent back. */
async function rawExchange(c: StartedCoordinator, text: string): Promise<string> {
  const socket = await openTls(c);
  return new Promise((resolve, reject) => {
    let received = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error('no answer to the raw request in time'));
    }, 30_000);
    socket.on('data', (d: Buffer) => (received += d.toString('utf8')));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(received);
    });
    socket.write(text);
  });
}

/**
 * Sends `head` and then one byte of `drip` every `everyMs` (never finishing); resolves when the
 * server closes the connection, with what it sent and how many bytes of the drip went out.
 */
async function trickle(
  c: StartedCoordinator,
  head: string,
  drip: string,
  everyMs: number,
  boundMs: number,
): Promise<{ received: string; dripped: number }> {
  const socket = await openTls(c);
  return new Promise((resolve, reject) => {
    let received = '';
    let dripped = 0;
    const bound = setTimeout(() => {
      clearInterval(timer);
      socket.destroy();
      reject(new Error(`the server kept a trickling client for more than ${boundMs} ms`));
    }, boundMs);
    const timer = setInterval(() => {
      socket.write(drip[dripped % drip.length] ?? ' ');
      dripped++;
    }, everyMs);
    socket.on('data', (d: Buffer) => (received += d.toString('utf8')));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearTimeout(bound);
      clearInterval(timer);
      resolve({ received, dripped });
    });
    socket.write(head);
  });
}

async function loginAs(c: StartedCoordinator, user: string, password: string): Promise<string> {
  const answer = await request(c.url, 'POST', '/api/v1/login', { json: { user, password } });
  assert.equal(answer.status, 200, answer.text);
  return (JSON.parse(answer.text) as LoginView).token;
}

async function createUser(
  c: StartedCoordinator,
  name: string,
  role: 'admin' | 'viewer',
): Promise<string> {
  const password = `${name}-password-1`;
  const created = await c.api('POST', '/users', { name, password, role });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  return loginAs(c, name, password);
}

function putBlob(c: StartedCoordinator, token: string, data: Buffer): Promise<Answer> {
  return request(c.url, 'PUT', `/api/v1/blobs/${sha(data)}`, {
    token,
    headers: { 'content-type': 'application/octet-stream', 'content-length': data.length },
    body: data,
  });
}

/** Whether the blob is in the coordinator's store (looked up on disk: the API would touch it). */
async function blobPresent(c: StartedCoordinator, sha256: string): Promise<boolean> {
  const file = join(c.dataDir, 'blobs', sha256.slice(0, 2), sha256);
  return (await stat(file).catch(() => undefined)) !== undefined;
}

async function download(c: StartedCoordinator, sha256: string): Promise<Buffer> {
  const response = await fetch(`${c.url}/api/v1/blobs/${sha256}`, {
    headers: { authorization: `Bearer ${c.token}` },
    signal: AbortSignal.timeout(30_000),
  });
  assert.equal(response.status, 200, `blob ${sha256}`);
  return Buffer.from(await response.arrayBuffer());
}

const modeOf = async (path: string): Promise<number> => (await stat(path)).mode & 0o777;

// ---- timeouts -----------------------------------------------------------------------------------

describe('slow clients and long requests (--request-timeout 2s)', () => {
  let c: StartedCoordinator;

  it('cuts off a login body sent a byte every 20 s, and keeps serving', T, async () => {
    c = await startCoordinator({ tls: true, args: ['--request-timeout', '2s', ...FAST] });
    const head = [
      'POST /api/v1/login HTTP/1.1',
      `Host: ${hostPort(c).host}`,
      'Content-Type: application/json',
      'Content-Length: 60',
      '',
      '{"user":"admin",',
    ].join('\r\n');
    // The bound is generous: the point is that the server closes, not how fast.
    const { received, dripped } = await trickle(c, head, '"password":"x"}', 20_000, 60_000);
    assert.doesNotMatch(received, /^HTTP\/1\.1 200/, 'no login for a trickled body');
    assert.equal(dripped, 0, 'closed before the second byte came (20 s later)');
    await assertServes(c);
  });

  it('cuts off a request head sent a header every second', T, async () => {
    const head = `GET /healthz HTTP/1.1\r\nHost: ${hostPort(c).host}\r\n`;
    const { received } = await trickle(c, head, 'X', 1000, 60_000);
    assert.ok(
      received === '' || received.startsWith('HTTP/1.1 408'),
      `a 408 or nothing: ${received}`,
    );
    await assertServes(c);
  });

  it(
    'keeps an event stream and a backup long poll open longer than the request timeout',
    T,
    async () => {
      // The event stream: open past several request timeouts, then an event still arrives.
      const controller = new AbortController();
      const bound = setTimeout(() => controller.abort(), 60_000);
      const events = await fetch(`${c.url}/api/v1/events`, {
        headers: { authorization: `Bearer ${c.token}` },
        signal: controller.signal,
      });
      assert.equal(events.status, 200);
      assert.equal(events.headers.get('x-frame-options'), 'DENY', 'a hijacked reply has them too');
      assert.match(events.headers.get('content-security-policy') ?? '', /frame-ancestors 'none'/);

      // A backup's long poll (30 s at most): registered and selected, it waits 6 s for changes.
      // Selecting calls the backup at its URL: this one answers as a backup standing by.
      const secret = randomBytes(32).toString('hex');
      const standing = createHttpsServer(
        { cert: await readFile(testTls().cert), key: await readFile(testTls().key) },
        (_req, res) => {
          res.setHeader('content-type', 'application/json');
          res.end('{"state":"standby","term":1,"history":false}');
        },
      );
      await new Promise<void>((resolve) => standing.listen(0, '127.0.0.1', resolve));
      after(() => standing.close());
      const registered = await request(c.url, 'POST', '/api/v1/ha/register', {
        json: {
          name: 'poller',
          url: `https://127.0.0.1:${(standing.address() as { port: number }).port}`,
          fingerprint: null,
          certificate: null,
          secret,
        },
      });
      assert.equal(registered.status, 200, registered.text);
      const selected = await c.api('PUT', '/backups/selected', { name: 'poller' });
      assert.equal(selected.status, 200, JSON.stringify(selected.body));
      const peer = { authorization: `Bearer ${secret}`, 'x-muster-backup': 'poller' };
      const beat = await request(c.url, 'GET', '/api/v1/ha/heartbeat', { headers: peer });
      assert.equal(beat.status, 200, beat.text);
      const { stream, lastSeq } = JSON.parse(beat.text) as { stream: string; lastSeq: number };
      const asked = Date.now();
      const poll = await request(
        c.url,
        'GET',
        `/api/v1/ha/changes?stream=${stream}&after=${lastSeq}&waitMs=6000`,
        { headers: peer },
      );
      assert.equal(poll.status, 200, poll.text);
      assert.ok(
        Date.now() - asked >= 5000,
        'the poll waited for changes, past the request timeout',
      );

      // The stream, open all that time, still delivers: a build appears on it.
      const submitted = await c.api<BuildView>('POST', '/builds', {
        plan: 'tasks:\n  t:\n    run: "true"\n',
        files: [],
      });
      assert.equal(submitted.status, 201, JSON.stringify(submitted.body));
      const reader = events.body!.getReader();
      let text = '';
      while (!text.includes('event: build')) {
        const chunk = (await reader.read()) as { done: boolean; value?: Uint8Array };
        assert.ok(!chunk.done && chunk.value, `the event stream ended: ${text}`);
        text += Buffer.from(chunk.value).toString('utf8');
      }
      controller.abort();
      clearTimeout(bound);
      assert.equal((await c.api('PUT', '/backups/selected', { name: null })).status, 200);
      await assertServes(c);
    },
  );

  it('lets an admin upload a blob slowly for longer than the request timeout', T, async () => {
    const data = randomBytes(3 * MiB);
    const socket = await openTls(c);
    const head = [
      `PUT /api/v1/blobs/${sha(data)} HTTP/1.1`,
      `Host: ${hostPort(c).host}`,
      `Authorization: Bearer ${c.token}`,
      'Content-Type: application/octet-stream',
      `Content-Length: ${data.length}`,
      'Connection: close',
      '',
      '',
    ].join('\r\n');
    const answer = new Promise<string>((resolve, reject) => {
      let received = '';
      const bound = setTimeout(() => reject(new Error('no answer to the slow upload')), 60_000);
      socket.on('data', (d: Buffer) => (received += d.toString('utf8')));
      socket.on('error', () => undefined);
      socket.on('close', () => {
        clearTimeout(bound);
        resolve(received);
      });
    });
    socket.write(head);
    // 12 pieces of 256 KiB, 400 ms apart: about 5 s, well past the 2 s for a request.
    for (let offset = 0; offset < data.length; offset += 256 * KiB) {
      socket.write(data.subarray(offset, offset + 256 * KiB));
      await new Promise((r) => setTimeout(r, 400));
    }
    assert.match(await answer, /^HTTP\/1\.1 204/);
    assert.ok((await download(c, sha(data))).equals(data));
    await assertServes(c);
  });
});

// ---- who may call what ---------------------------------------------------------------------------

describe('routes decide who may call them', () => {
  let c: StartedCoordinator;

  it(
    'refuses an absolute-form request without credentials, and routes it with them',
    T,
    async () => {
      c = await startCoordinator({ tls: true });
      const { host, port } = hostPort(c);
      const absolute = (auth: string) =>
        rawExchange(
          c,
          `GET https://${host}:${port}/api/v1/agents HTTP/1.1\r\nHost: ${host}\r\n${auth}Connection: close\r\n\r\n`,
        );
      const anonymous = await absolute('');
      assert.match(anonymous, /^HTTP\/1\.1 401/, anonymous);
      assert.match(anonymous, /"code":"UNAUTHORIZED"/);
      const withToken = await absolute(`Authorization: Bearer ${c.token}\r\n`);
      assert.match(withToken, /^HTTP\/1\.1 200/, withToken);
      await assertServes(c);
    },
  );

  it('never answers an API route without credentials, however the path is spelled', T, async () => {
    const spellings = [
      '/api/v1/agents',
      '/%61pi/v1/agents',
      '/api/v1/%61gents',
      '//api/v1/agents',
      '/api/v1/agents/',
      '/API/v1/agents',
      '/api/v1/./agents',
      '/api/v1/nope',
      '/api/v1/ha/state',
      '/api/v1/ha/history/tokens',
      '/api/v1/ha/heartbeat',
      '/api/v1/backups',
    ];
    for (const path of spellings) {
      for (const method of ['GET', 'HEAD']) {
        const answer = await request(c.url, method, path);
        assert.ok(
          [401, 403, 404].includes(answer.status),
          `${method} ${path} without credentials: ${answer.status} ${answer.text}`,
        );
      }
    }
    // The public ones stay public, the web UI included.
    const assets = await readdir(new URL('../../web/assets/', import.meta.url));
    const script = assets.find((name) => name.endsWith('.js'));
    assert.ok(script, 'the web UI is built');
    for (const path of [
      '/healthz',
      '/readyz',
      '/metrics',
      '/api/v1/openapi.json',
      '/api/v1/plan.schema.json',
      '/',
      '/login',
      '/builds/3',
      `/assets/${script}`,
    ]) {
      const answer = await request(c.url, 'GET', path);
      assert.equal(answer.status, 200, `${path}: ${answer.text.slice(0, 200)}`);
    }
    await assertServes(c);
  });

  it('takes small bodies only on anonymous routes, large ones on the others', T, async () => {
    const big = JSON.stringify({ user: 'admin', password: 'x'.repeat(20 * KiB) });
    for (const path of ['/api/v1/login', '/api/v1/session/login']) {
      const answer = await request(c.url, 'POST', path, {
        body: big,
        headers: { 'content-type': 'application/json' },
      });
      assertError(answer, 413, 'PAYLOAD_TOO_LARGE', path);
    }
    const registration = await request(c.url, 'POST', '/api/v1/ha/register', {
      json: {
        name: 'huge',
        url: 'https://127.0.0.1:9',
        fingerprint: null,
        certificate: 'x'.repeat(100 * KiB),
        secret: 's'.repeat(40),
      },
    });
    assertError(registration, 413, 'PAYLOAD_TOO_LARGE', '/api/v1/ha/register');
    // A 900 KiB plan is read (and judged on what it says).
    const plan = `tasks:\n  t:\n    run: "true"\n# ${'x'.repeat(900 * KiB)}\n`;
    const build = await request(c.url, 'POST', '/api/v1/builds', {
      token: c.token,
      json: { plan, files: [] },
    });
    assert.equal(build.status, 201, build.text.slice(0, 300));
    await assertServes(c);
  });

  it('sends the security headers with every kind of response', T, async () => {
    const assets = await readdir(new URL('../../web/assets/', import.meta.url));
    const answers: [string, Answer][] = [
      ['index.html', await request(c.url, 'GET', '/')],
      ['a page', await request(c.url, 'GET', '/agents')],
      ['a script', await request(c.url, 'GET', `/assets/${assets.find((a) => a.endsWith('.js'))}`)],
      ['JSON', await request(c.url, 'GET', '/api/v1/status', { token: c.token })],
      ['a 401', await request(c.url, 'GET', '/api/v1/status')],
      ['a 404', await request(c.url, 'GET', '/nope.js')],
      ['health', await request(c.url, 'GET', '/healthz')],
      ['a 400', await request(c.url, 'GET', '/api/v1/blobs/xyz', { token: c.token })],
    ];
    for (const [what, answer] of answers) {
      const csp = String(answer.headers['content-security-policy']);
      for (const directive of [
        "script-src 'self'",
        "object-src 'none'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
      ])
        assert.ok(csp.includes(directive), `${what}: ${directive} in ${csp}`);
      assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/, what);
      assert.equal(answer.headers['x-frame-options'], 'DENY', what);
      assert.equal(answer.headers['x-content-type-options'], 'nosniff', what);
      assert.equal(answer.headers['referrer-policy'], 'no-referrer', what);
    }
  });
});

// ---- logins -------------------------------------------------------------------------------------

describe('failed logins', () => {
  it(
    'are limited per user name across addresses (20 in 10 min) and per /24 (100 a minute)',
    T,
    async () => {
      const c = await startCoordinator({ tls: true });
      await createUser(c, 'target', 'viewer');
      const fail = (user: string, from: string) =>
        request(c.url, 'POST', '/api/v1/login', { json: { user, password: 'wrong' }, from });
      // 10 from each of two /24s: each stays under its own limits, the name reaches 20.
      for (const from of ['127.0.1.2', '127.0.2.2']) {
        for (let i = 0; i < 10; i++) assertError(await fail('target', from), 401, 'UNAUTHORIZED');
      }
      const third = await fail('target', '127.0.3.2');
      assertError(third, 429, 'RATE_LIMITED', 'the 21st failure for one name, from a third /24');
      assert.ok(Number(third.headers['retry-after']) >= 1);
      // Even the right password waits: the limit is on the name, not on the guesses' source.
      const right = await request(c.url, 'POST', '/api/v1/login', {
        json: { user: 'target', password: 'target-password-1' },
        from: '127.0.4.2',
      });
      assertError(right, 429, 'RATE_LIMITED');
      // Other names from that address are not affected.
      assertError(await fail('someone', '127.0.3.2'), 401, 'UNAUTHORIZED');

      // One /24, three addresses (under the 50 per address), distinct names: 100 failures.
      let n = 0;
      for (const [from, count] of [
        ['127.0.5.1', 34],
        ['127.0.5.2', 34],
        ['127.0.5.3', 32],
      ] as const) {
        for (let i = 0; i < count; i++) {
          assertError(await fail(`guess-${n++}`, from), 401, 'UNAUTHORIZED', from);
        }
      }
      assertError(await fail('fresh-name', '127.0.5.77'), 429, 'RATE_LIMITED', 'same /24');
      assertError(await fail('fresh-name', '127.0.6.77'), 401, 'UNAUTHORIZED', 'next /24');
      await assertServes(c);
    },
  );

  it('cost an unknown user name a scrypt like a known one', T, async () => {
    // At 2^15 a derivation takes tens of milliseconds; a lookup that skipped it would take one.
    const c = await startCoordinator({ tls: true, args: ['--password-cost', '15'] });
    await loginAs(c, 'admin', ADMIN_PASSWORD); // the admin's hash is upgraded to 2^15 here
    const median = async (user: string): Promise<number> => {
      const times: number[] = [];
      for (let i = 0; i < 5; i++) {
        const started = process.hrtime.bigint();
        assertError(
          await request(c.url, 'POST', '/api/v1/login', {
            json: { user, password: `wrong-${i}` },
            from: `127.0.${i + 10}.1`,
          }),
          401,
          'UNAUTHORIZED',
        );
        times.push(Number(process.hrtime.bigint() - started) / 1e6);
      }
      return times.sort((a, b) => a - b)[2]!;
    };
    const known = await median('admin');
    const unknown = await median('nobody-by-this-name');
    // A ratio, not a time limit: without the dummy verify it would be near 0.
    assert.ok(
      unknown > known * 0.4,
      `an unknown name took ${unknown.toFixed(1)} ms, a known one ${known.toFixed(1)} ms`,
    );
    await assertServes(c);
  });

  it('upgrades a password hash made with an older cost at the next login', T, async () => {
    const c = await startCoordinator({ tls: true, dataDir: await tempDir('muster-coord-') });
    await createUser(c, 'veteran', 'admin');
    await c.stop();
    const hashOf = (user: string): string => {
      const db = new Database(join(c.dataDir, 'muster.db'), { readonly: true });
      try {
        const row = db.prepare('SELECT password_hash FROM users WHERE name = ?').get(user) as {
          password_hash: string;
        };
        return row.password_hash;
      } finally {
        db.close();
      }
    };
    assert.match(hashOf('veteran'), /^scrypt\$16384\$8\$1\$/, 'made at the test cost, 2^14');

    const again = await restartCoordinator(c, { tls: true, args: ['--password-cost', '15'] });
    await loginAs(again, 'veteran', 'veteran-password-1');
    // The log line travels through the process's stdout: wait for it a little.
    await waitFor(
      () => again.logs.some((l) => l.msg === 'password hash upgraded' && l.user === 'veteran'),
      10_000,
      'the upgrade to be logged',
    );
    await again.stop();
    assert.match(hashOf('veteran'), /^scrypt\$32768\$8\$1\$/, 'stored again at 2^15');
    assert.match(hashOf('admin'), /^scrypt\$32768\$8\$1\$/, 'the helper logged admin in too');

    // A coordinator with the lower cost again reads the cost from the hash, and keeps the
    // stronger one.
    const third = await restartCoordinator(c, { tls: true });
    await loginAs(third, 'veteran', 'veteran-password-1');
    await assertServes(third);
    await third.stop();
    assert.match(hashOf('veteran'), /^scrypt\$32768\$8\$1\$/, 'not lowered');
  });
});

// ---- data dir -----------------------------------------------------------------------------------

describe('the data dir', () => {
  it('is made private at every start, also when it exists with looser modes', T, async () => {
    const dataDir = await tempDir('muster-coord-');
    await chmod(dataDir, 0o755);
    const check = async (): Promise<void> => {
      assert.equal(await modeOf(dataDir), 0o700, 'the data dir');
      assert.equal(await modeOf(join(dataDir, 'blobs')), 0o700, 'blobs');
      const names = await readdir(dataDir);
      for (const name of ['muster.db', 'muster.db-wal', 'muster.db-shm']) {
        if (name === 'muster.db') assert.ok(names.includes(name));
        if (names.includes(name)) assert.equal(await modeOf(join(dataDir, name)), 0o600, name);
      }
    };
    const c = await startCoordinator({ tls: true, dataDir });
    await check();
    await c.stop();
    // Loosened by hand (or left so by an older version): fixed at the next start.
    await chmod(dataDir, 0o755);
    await chmod(join(dataDir, 'blobs'), 0o777);
    await chmod(join(dataDir, 'muster.db'), 0o644);
    const again = await restartCoordinator(c, { tls: true });
    await check();
    await assertServes(again);
  });
});

// ---- blobs --------------------------------------------------------------------------------------

describe('blob uploads', () => {
  it(
    'need a role that runs builds and fit the quota on unreferenced bytes (per user, in all)',
    T,
    async () => {
      const c = await startCoordinator({
        tls: true,
        args: ['--upload-quota', '3MiB', '--upload-quota-per-user', '2MiB'],
      });
      const viewer = await createUser(c, 'looker', 'viewer');
      const other = await createUser(c, 'second-admin', 'admin');
      const viewers = randomBytes(1000);
      assertError(await putBlob(c, viewer, viewers), 403, 'FORBIDDEN', 'a viewer uploads');
      assert.equal(await blobPresent(c, sha(viewers)), false, 'nothing of it kept');

      const a = randomBytes(1.5 * MiB);
      const b = randomBytes(1 * MiB);
      assert.equal((await putBlob(c, c.token, a)).status, 204);
      const mine = assertError(await putBlob(c, c.token, b), 413, 'UPLOAD_QUOTA_EXCEEDED');
      assert.equal(mine.details?.scope, 'user');
      assert.match(mine.message, /your uploads/);
      assert.equal(await blobPresent(c, sha(b)), false);
      // Another admin has a share of their own, up to the total.
      const cc = randomBytes(1 * MiB);
      assert.equal((await putBlob(c, other, cc)).status, 204);
      const d = randomBytes(1 * MiB);
      const all = assertError(await putBlob(c, other, d), 413, 'UPLOAD_QUOTA_EXCEEDED');
      assert.equal(all.details?.scope, 'total');
      // Uploading what is already there costs nothing.
      assert.equal((await putBlob(c, c.token, a)).status, 204);

      // A build that uses `a` takes it off the count: `b` fits now.
      const build = await c.api<BuildView>('POST', '/builds', {
        plan: 'tasks:\n  t:\n    run: cat a.bin\n    inputs: [a.bin]\n',
        files: [{ path: 'a.bin', sha256: sha(a), size: a.length, mode: 0o644 }],
      });
      assert.equal(build.status, 201, JSON.stringify(build.body));
      assert.equal((await putBlob(c, c.token, b)).status, 204);
      await assertServes(c);
    },
  );

  it('answers a refused upload to a client that is still sending its body', T, async () => {
    const c = await startCoordinator({ tls: true });
    const viewer = await createUser(c, 'late-sender', 'viewer');
    // The refusal is decided from the head alone, while the body is still on its way: the
    // connection (Connection: close) must stay open until it has arrived, or the client, still
    // writing, gets a reset (EPIPE) instead of the answer.
    for (let i = 0; i < 5; i++) {
      const data = randomBytes(12 * MiB);
      const answer = await request(c.url, 'PUT', `/api/v1/blobs/${sha(data)}`, {
        token: viewer,
        headers: { 'content-type': 'application/octet-stream', 'content-length': data.length },
        body: data,
      });
      assertError(answer, 403, 'FORBIDDEN', 'a viewer uploads');
      assert.equal(await blobPresent(c, sha(data)), false);
    }
    await assertServes(c);
  });

  it(
    'deletes blobs nothing references after --blob-retention, keeping inputs and outputs (also on a backup)',
    T,
    async () => {
      const agent = await startAgent({ dataDir: await tempDir('muster-agent-') });
      const c = await startCoordinator({ tls: true, args: [...FAST, '--blob-retention', '2s'] });
      const backup = await startBackup(c, 'keeper', ['--blob-retention', '2s']);
      await selectBackup(c, backup, 'keeper');
      await c.addAgent('one', agent);
      const input = Buffer.from('alpha\n');
      const unused = randomBytes(64 * KiB);
      assert.equal((await putBlob(c, c.token, input)).status, 204);
      assert.equal((await putBlob(c, c.token, unused)).status, 204);
      const submitted = await c.api<BuildView>('POST', '/builds', {
        plan: 'tasks:\n  upper:\n    run: tr a-z A-Z < a.txt > A.txt\n    inputs: [a.txt]\n    outputs: [A.txt]\n',
        files: [{ path: 'a.txt', sha256: sha(input), size: input.length, mode: 0o644 }],
      });
      assert.equal(submitted.status, 201, JSON.stringify(submitted.body));
      const done = await c.waitForBuild(submitted.body.id, 60_000);
      assert.equal(done.status, 'succeeded', JSON.stringify(done));
      const output = done.tasks[0]!.outputs[0]!.sha256;

      await waitFor(
        async () => !(await blobPresent(c, sha(unused))),
        30_000,
        'the unused blob to go',
      );
      // Another unused blob, gone too: sweeps ran while the build's blobs were past the retention.
      const later = randomBytes(1000);
      assert.equal((await putBlob(c, c.token, later)).status, 204);
      await waitFor(async () => !(await blobPresent(c, sha(later))), 30_000, 'the second to go');
      assert.equal((await download(c, sha(input))).toString(), 'alpha\n', 'the input stays');
      assert.equal((await download(c, output)).toString(), 'ALPHA\n', 'the output stays');

      // The backup copied the build's blobs and keeps them through its own sweeps.
      const onBackup = (hash: string) => join(backup.dataDir, 'blobs', hash.slice(0, 2), hash);
      await waitFor(
        async () =>
          (await stat(onBackup(output)).catch(() => undefined)) !== undefined &&
          (await stat(onBackup(sha(input))).catch(() => undefined)) !== undefined,
        30_000,
        'the backup to copy the blobs',
      );
      const stranger = join(backup.dataDir, 'blobs', 'ab', `ab${'0'.repeat(62)}`);
      await mkdir(join(backup.dataDir, 'blobs', 'ab'), { recursive: true });
      await writeFile(stranger, 'x');
      await waitFor(
        async () => (await stat(stranger).catch(() => undefined)) === undefined,
        30_000,
        "the backup's sweep",
      );
      assert.ok(await stat(onBackup(output)), 'the backup keeps the output');
      assert.ok(await stat(onBackup(sha(input))), 'the backup keeps the input');
      await assertServes(c);
    },
  );
});
