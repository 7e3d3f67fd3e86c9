/**
 * Encrypted by default (security issue 10), with real processes: a coordinator that listens off
 * loopback without certificate files serves HTTPS with a self-signed certificate it made (0600,
 * fingerprint printed, the same after a restart, replaceable under Admin › Certificates); plain
 * HTTP only with --no-tls or on loopback. `muster login` refuses that certificate without a
 * terminal to confirm it on, pins it with --fingerprint (later commands check the pin), and
 * refuses a wrong fingerprint before the password is sent. The tests' NODE_EXTRA_CA_CERTS trusts
 * the shared test certificate only, so the generated one is untrusted here, as on a user's machine.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { cleanup, makeTempDir, waitFor } from '../helpers/agent-process.js';
import { makeCertificate, servedFingerprint } from '../helpers/certificates.js';
import { runCli, type CliResult } from '../helpers/cli.js';
import { ADMIN_PASSWORD } from '../helpers/coordinator-process.js';
import { spawnDaemon, type Daemon } from '../helpers/daemon.js';

const daemons = new Set<Daemon>();
const dirs: string[] = [];

async function coordinator(args: string[]): Promise<{ daemon: Daemon; url: string }> {
  const daemon = await spawnDaemon(['coordinator', '--log-level', 'info', ...args], {
    env: { MUSTER_ADMIN_PASSWORD: ADMIN_PASSWORD },
    isReady: (entry) => entry.msg === 'listening' && typeof entry.url === 'string',
  });
  daemons.add(daemon);
  // Listening on every address: clients reach it on loopback.
  const url = (daemon.ready.url as string).replace('0.0.0.0', '127.0.0.1');
  return { daemon, url };
}

async function stop(daemon: Daemon): Promise<void> {
  await daemon.stop();
  daemons.delete(daemon);
}

async function tempDir(prefix: string): Promise<string> {
  const dir = await makeTempDir(prefix);
  dirs.push(dir);
  return dir;
}

/** A CLI user with a config dir of its own and the tests' trust (which lacks the generated cert). */
async function cliUser(): Promise<NodeJS.ProcessEnv> {
  return {
    MUSTER_CONFIG_DIR: await tempDir('muster-tls-cli-'),
    NODE_EXTRA_CA_CERTS: process.env.NODE_EXTRA_CA_CERTS,
  };
}

function muster(args: string[], env: NodeJS.ProcessEnv, input?: string): Promise<CliResult> {
  return runCli(args, { env, timeoutMs: 60_000, ...(input === undefined ? {} : { input }) });
}

const mode = async (path: string): Promise<number> => (await stat(path)).mode & 0o777;

after(async () => {
  await Promise.all([...daemons].map((d) => d.kill()));
  await cleanup(dirs);
});

describe('a coordinator off loopback without certificate files', () => {
  let data: string;
  let daemon: Daemon;
  let url: string;
  let fingerprint: string;
  let user: NodeJS.ProcessEnv;

  before(async () => {
    data = await tempDir('muster-tls-coord-');
    ({ daemon, url } = await coordinator(['--listen', '0.0.0.0:0', '--data', data]));
    fingerprint = daemon.ready.fingerprint as string;
    user = await cliUser();
  });

  it('serves HTTPS with a self-signed certificate it made, 0600, its fingerprint printed', async () => {
    assert.match(url, /^https:\/\/127\.0\.0\.1:\d+$/);
    assert.equal(daemon.ready.tls, true);
    assert.match(fingerprint, /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
    await waitFor(
      () =>
        daemon.stderr().includes(`TLS certificate fingerprint (SHA-256):\n\n    ${fingerprint}`),
      10_000,
      'the fingerprint on stderr',
    );
    const certFile = join(data, 'tls', 'cert.pem');
    assert.equal(await mode(join(data, 'tls')), 0o700);
    assert.equal(await mode(certFile), 0o600);
    assert.equal(await mode(join(data, 'tls', 'key.pem')), 0o600);
    const cert = new X509Certificate(await readFile(certFile, 'utf8'));
    assert.equal(cert.fingerprint256, fingerprint);
    assert.equal(cert.issuer, cert.subject);
    for (const name of ['DNS:localhost', 'IP Address:127.0.0.1'])
      assert.ok(cert.subjectAltName?.includes(name), cert.subjectAltName);
    assert.ok(Date.parse(cert.validTo) > Date.now() + 5 * 365 * 86_400_000, cert.validTo);
    assert.equal(await servedFingerprint(url), fingerprint);
    // Not plain HTTP, and not trusted by this machine (the tests trust only their own CA).
    await assert.rejects(fetch(`${url.replace('https:', 'http:')}/healthz`));
    await assert.rejects(fetch(`${url}/healthz`));
  });

  it('muster login without a terminal refuses it, printing the fingerprint and the flag', async () => {
    for (const args of [['--password-stdin'], []]) {
      const result = await muster(['login', url, ...args], user, `${ADMIN_PASSWORD}\n`);
      assert.equal(result.code, 2, result.stderr);
      assert.match(result.stderr, /\[TLS_UNTRUSTED\]/);
      assert.ok(result.stderr.includes(`--fingerprint ${fingerprint}`), result.stderr);
      assert.match(result.stderr, /not trusted by this machine/);
    }
    await assert.rejects(stat(join(user.MUSTER_CONFIG_DIR!, 'credentials.json')));
  });

  it('a wrong --fingerprint is refused before the password is sent', async () => {
    const wrong = `${fingerprint.startsWith('AA') ? 'BB' : 'AA'}${fingerprint.slice(2)}`;
    // A wrong password too: had it reached the coordinator, it would log "login failed".
    const result = await muster(
      ['login', url, '--password-stdin', '--fingerprint', wrong],
      user,
      'not-the-password\n',
    );
    assert.equal(result.code, 2, result.stderr);
    assert.match(result.stderr, /\[TLS_FINGERPRINT_MISMATCH\]/);
    assert.ok(result.stderr.includes(fingerprint), result.stderr);
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(
      daemon.logs.filter((entry) => entry.msg === 'login failed').length,
      0,
      'the coordinator saw no login',
    );
    await assert.rejects(stat(join(user.MUSTER_CONFIG_DIR!, 'credentials.json')));
  });

  it('with --fingerprint it logs in and pins it; later commands check the pin', async () => {
    const login = await muster(
      ['login', url, '--password-stdin', '--fingerprint', fingerprint.replaceAll(':', '')],
      user,
      `${ADMIN_PASSWORD}\n`,
    );
    assert.equal(login.code, 0, login.stderr);
    assert.match(login.stdout, /^Logged in to https:\/\/127\.0\.0\.1:\d+ as admin/);
    const path = join(user.MUSTER_CONFIG_DIR!, 'credentials.json');
    assert.equal(await mode(path), 0o600);
    const saved = JSON.parse(await readFile(path, 'utf8')) as Record<string, string>;
    assert.equal(saved.fingerprint, fingerprint);
    assert.equal(saved.url, url);

    const status = await muster(['status', '--json'], user);
    assert.equal(status.code, 0, status.stderr);
    assert.equal((JSON.parse(status.stdout) as { role: string }).role, 'primary');
    const shown = await muster(['certificate', 'show', '--json'], user);
    assert.equal(shown.code, 0, shown.stderr);
    assert.equal(
      (JSON.parse(shown.stdout) as { fingerprint256: string }).fingerprint256,
      fingerprint,
    );

    // Logging in again to the same URL keeps the pin without asking.
    const again = await muster(['login', url, '--password-stdin'], user, `${ADMIN_PASSWORD}\n`);
    assert.equal(again.code, 0, again.stderr);

    // A pin the certificate does not match: refused in the handshake, token not sent.
    const other = `${fingerprint.startsWith('AA') ? 'BB' : 'AA'}${fingerprint.slice(2)}`;
    await writeFile(path, JSON.stringify({ ...saved, fingerprint: other }), { mode: 0o600 });
    const refused = await muster(['status', '--json'], user);
    assert.equal(refused.code, 2, refused.stderr);
    assert.match(refused.stderr, /\[TLS_FINGERPRINT_MISMATCH\]/);
    await writeFile(path, JSON.stringify(saved), { mode: 0o600 });
  });

  it('serves the same certificate after a restart', async () => {
    const before = await readFile(join(data, 'tls', 'cert.pem'), 'utf8');
    const port = new URL(url).port;
    await stop(daemon);
    ({ daemon, url } = await coordinator(['--listen', `0.0.0.0:${port}`, '--data', data]));
    assert.equal(daemon.ready.fingerprint, fingerprint);
    assert.equal(await readFile(join(data, 'tls', 'cert.pem'), 'utf8'), before);
    assert.doesNotMatch(daemon.stderr(), /made a self-signed certificate/);
    const status = await muster(['status', '--json'], user);
    assert.equal(status.code, 0, status.stderr);
  });

  it('Admin › Certificates replaces the generated files; the old pin then stops working', async () => {
    const next = await makeCertificate({ ips: ['127.0.0.1'], dns: ['localhost'] });
    const dir = await tempDir('muster-tls-new-');
    await writeFile(join(dir, 'cert.pem'), next.cert);
    await writeFile(join(dir, 'key.pem'), next.key, { mode: 0o600 });
    const replaced = await muster(
      ['certificate', 'replace', '--cert', join(dir, 'cert.pem'), '--key', join(dir, 'key.pem')],
      user,
    );
    assert.equal(replaced.code, 0, replaced.stderr);
    const written = new X509Certificate(await readFile(join(data, 'tls', 'cert.pem'), 'utf8'));
    assert.equal(written.fingerprint256, next.fingerprint);
    assert.equal(await mode(join(data, 'tls', 'key.pem')), 0o600);
    assert.equal(await mode(join(data, 'tls', 'key.pem.previous')), 0o600);
    assert.equal(await servedFingerprint(url), next.fingerprint);

    const stale = await muster(['status', '--json'], user);
    assert.equal(stale.code, 2, stale.stderr);
    assert.match(stale.stderr, /\[TLS_FINGERPRINT_MISMATCH\]/);
    const login = await muster(
      ['login', url, '--password-stdin', '--fingerprint', next.fingerprint],
      user,
      `${ADMIN_PASSWORD}\n`,
    );
    assert.equal(login.code, 0, login.stderr);
    assert.equal((await muster(['status', '--json'], user)).code, 0);
  });
});

describe('plain HTTP', () => {
  it('only with --no-tls off loopback; by default on loopback', async () => {
    const data = await tempDir('muster-tls-plain-');
    const plain = await coordinator(['--listen', '0.0.0.0:0', '--data', data, '--no-tls']);
    assert.match(plain.url, /^http:\/\//);
    assert.equal(plain.daemon.ready.tls, false);
    assert.equal(plain.daemon.ready.plainHttp, 'no-tls');
    // Printed once start() returns, just after the 'listening' log entry the helper waits for.
    await waitFor(
      () => /TLS is off \(--no-tls\)/.test(plain.daemon.stderr()),
      10_000,
      'the --no-tls warning on stderr',
    );
    assert.equal((await fetch(`${plain.url}/healthz`)).status, 200);
    await assert.rejects(stat(join(data, 'tls')));
    await stop(plain.daemon);

    const local = await coordinator(['--listen', '127.0.0.1:0', '--data', data]);
    assert.match(local.url, /^http:\/\/127\.0\.0\.1:/);
    assert.equal(local.daemon.ready.plainHttp, 'loopback');
    await assert.rejects(stat(join(data, 'tls')));
    await stop(local.daemon);
  });

  it('--no-tls with --tls-cert is a configuration error', async () => {
    const data = await tempDir('muster-tls-both-');
    const result = await runCli([
      'coordinator',
      '--listen',
      '0.0.0.0:0',
      '--data',
      data,
      '--no-tls',
      '--tls-cert',
      join(data, 'c.pem'),
      '--tls-key',
      join(data, 'k.pem'),
    ]);
    assert.equal(result.code, 2, result.stderr);
    assert.match(result.stderr, /--no-tls cannot be combined with --tls-cert.*\[INVALID_CONFIG\]/);
  });
});
