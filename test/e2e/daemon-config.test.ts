/**
 * The daemons as an operator configures them: a YAML file (--config, MUSTER_CONFIG), MUSTER_*
 * variables that beat it, flags that beat both, and a bad file refused at start with every
 * problem; `muster config check` says the same without starting anything.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { X509Certificate, createHash } from 'node:crypto';
import { stat, writeFile } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import { connect as tlsConnect } from 'node:tls';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { cleanup, cliPath, makeTempDir } from '../helpers/agent-process.js';
import { spawnDaemon, type Daemon } from '../helpers/daemon.js';
import { selfSignedCertificate } from '../../src/common/self-signed.js';
import type { AuditView } from '../../src/api/views/audit.js';

const dirs: string[] = [];
const daemons: Daemon[] = [];
after(async () => {
  for (const d of daemons) await d.stop();
  await cleanup(dirs);
});

async function tempDir(): Promise<string> {
  const dir = await makeTempDir();
  dirs.push(dir);
  return dir;
}

/** Runs the CLI to its end: exit code, stdout, stderr. */
function muster(
  args: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [cliPath, ...args],
      { env: { ...process.env, ...env }, timeout: 60_000 },
      (err, stdout, stderr) => {
        const code = err === null ? 0 : typeof err.code === 'number' ? err.code : -1;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

async function startAgent(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Daemon> {
  const daemon = await spawnDaemon(['agent', ...args], {
    env,
    isReady: (entry) => entry.msg === 'listening',
  });
  daemons.push(daemon);
  return daemon;
}

describe('daemon configuration', () => {
  it('an agent takes its config file, MUSTER_* variables over it and flags over both', async () => {
    const base = await tempDir();
    const config = join(base, 'muster.yml');
    await writeFile(
      config,
      [
        'agent:',
        '  listen: 127.0.0.1:0',
        `  data: ${join(base, 'from-file')}`,
        '  tls: false',
        '  drain-timeout: 5s',
        'coordinator:',
        '  listen: 127.0.0.1:0',
        `  data: ${join(base, 'coordinator')}`,
        '',
      ].join('\n'),
    );

    const fromFile = await startAgent(['--config', config]);
    assert.equal(fromFile.ready.host, '127.0.0.1');
    assert.equal(fromFile.ready.fingerprint, undefined, 'tls: false');
    assert.ok((await stat(join(base, 'from-file', 'access-key'))).isFile());
    assert.equal(await fromFile.stop(), 0);

    const fromEnv = await startAgent([], {
      MUSTER_CONFIG: config,
      MUSTER_LISTEN: '127.0.0.2:0',
      MUSTER_DATA: join(base, 'from-env'),
    });
    assert.equal(fromEnv.ready.host, '127.0.0.2', 'MUSTER_LISTEN beats the file');
    assert.ok((await stat(join(base, 'from-env', 'access-key'))).isFile());
    assert.equal(fromEnv.ready.fingerprint, undefined, 'the rest still from the file');
    assert.equal(await fromEnv.stop(), 0);

    const fromFlag = await startAgent(['--config', config, '--listen', '127.0.0.3:0'], {
      MUSTER_LISTEN: '127.0.0.2:0',
    });
    assert.equal(fromFlag.ready.host, '127.0.0.3', 'the flag beats MUSTER_LISTEN');
    assert.equal(await fromFlag.stop(), 0);

    const coordinator = await spawnDaemon(['coordinator', '--config', config], {
      env: { MUSTER_ADMIN_PASSWORD: 'config-test-password' },
      isReady: (entry) => entry.msg === 'listening' && typeof entry.url === 'string',
    });
    daemons.push(coordinator);
    assert.match(String(coordinator.ready.url), /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.ok((await stat(join(base, 'coordinator'))).isDirectory());
    assert.equal(await coordinator.stop(), 0);

    const check = await muster(['config', 'check', config]);
    assert.equal(check.code, 0, check.stderr);
    assert.match(check.stdout, /agent: 4 options, ok; coordinator: 2 options, ok/);
  });

  it("the agent's admin commands find its data dir in its config file", async () => {
    const base = await tempDir();
    const config = join(base, 'muster.yml');
    await writeFile(config, `agent:\n  listen: 127.0.0.1:0\n  data: ${join(base, 'agent')}\n`);
    const agent = await startAgent(['--config', config]);
    assert.equal(await agent.stop(), 0);
    for (const run of [
      () => muster(['agent', 'leases', '--config', config, '--json']),
      () => muster(['agent', 'instances', '--json'], { MUSTER_CONFIG: config }),
    ]) {
      const listed = await run();
      assert.equal(listed.code, 0, listed.stderr);
      assert.deepEqual(JSON.parse(listed.stdout), []);
    }
    // --data and MUSTER_DATA still win: here, a dir that is no agent's.
    const elsewhere = await muster(['agent', 'leases', '--config', config], {
      MUSTER_DATA: base,
    });
    assert.equal(elsewhere.code, 2, elsewhere.stderr);
    assert.match(elsewhere.stderr, /not an agent data dir/);
  });

  it('a bad file stops the daemon at start with every problem, and config check says the same', async () => {
    const base = await tempDir();
    const config = join(base, 'bad.yml');
    await writeFile(
      config,
      `agent:\n  listen: 127.0.0.1:0\n  data: ${join(base, 'agent')}\n  drain-timout: 30s\n  max-unauthenticated: lots\n`,
    );
    for (const args of [
      ['agent', '--config', config],
      ['config', 'check', config],
    ]) {
      const run = await muster(args);
      assert.equal(run.code, 2, `${args.join(' ')}: ${run.stderr}`);
      assert.match(run.stderr, /2 problems/);
      assert.match(
        run.stderr,
        /agent\.drain-timout: not an option of muster agent; did you mean "drain-timeout"\?/,
      );
      assert.match(run.stderr, /agent\.max-unauthenticated: "lots" is not a whole number/);
    }
    await assert.rejects(stat(join(base, 'agent')), 'the agent did not start');

    await writeFile(config, `agent:\n  listen: 127.0.0.1:0\n  lease-ttl: 30\n`);
    for (const args of [
      ['agent', '--config', config, '--data', join(base, 'agent')],
      ['config', 'check', config],
    ]) {
      const run = await muster(args);
      assert.equal(run.code, 2, run.stderr);
      assert.match(run.stderr, /--lease-ttl "30" has no unit: write 30s, 30m or 30ms/);
    }
    const flag = await muster(['agent', '--data', join(base, 'agent'), '--drain-timeout', '30']);
    assert.equal(flag.code, 2);
    assert.match(flag.stderr, /--drain-timeout "30" has no unit/);
  });
});

/** The SHA-256 fingerprint of the certificate a TLS server at 127.0.0.1:port presents. */
function servedFingerprint(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => {
      const fingerprint = socket.getPeerCertificate().fingerprint256;
      socket.destroy();
      resolve(fingerprint);
    });
    socket.setTimeout(10_000, () => socket.destroy(new Error('no TLS handshake in 10 s')));
    socket.once('error', reject);
  });
}

/** A JSON request to a coordinator over HTTPS whatever its certificate (this test made it). */
function call(
  port: number,
  method: string,
  path: string,
  body?: unknown,
  token?: string,
): Promise<{ status: number; body: unknown }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      {
        host: '127.0.0.1',
        port,
        method,
        path,
        rejectUnauthorized: false,
        timeout: 10_000,
        headers: {
          'content-type': Buffer.isBuffer(body) ? 'application/octet-stream' : 'application/json',
          ...(token === undefined ? {} : { authorization: `Bearer ${token}` }),
        },
      },
      (res) => {
        let text = '';
        res.on('data', (d: Buffer) => (text += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }));
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${method} ${path}: no answer`)));
    req.on('error', reject);
    req.end(body === undefined ? undefined : Buffer.isBuffer(body) ? body : JSON.stringify(body));
  });
}

/** Waits (bounded) for a log line of the daemon from index `from` on that `match`es. */
async function logLine(
  daemon: Daemon,
  from: number,
  match: (entry: Record<string, unknown>) => boolean,
): Promise<Record<string, unknown>> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const found = daemon.logs.slice(from).find(match);
    if (found !== undefined) return found;
    if (Date.now() > deadline) throw new Error(`no such log line in 30 s: ${daemon.stderr()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function writePair(dir: string): Promise<string> {
  const { cert, key } = await selfSignedCertificate({
    commonName: 'muster reload test',
    dns: ['localhost'],
    ips: ['127.0.0.1'],
    notAfter: new Date(Date.now() + 86_400_000),
  });
  await writeFile(join(dir, 'cert.pem'), cert);
  await writeFile(join(dir, 'key.pem'), key, { mode: 0o600 });
  return new X509Certificate(cert).fingerprint256;
}

describe('SIGHUP', () => {
  it('an agent takes the log level, its connection limits and new certificate files, and names what waits for a restart', async () => {
    const base = await tempDir();
    const first = await writePair(base);
    const config = join(base, 'agent.yml');
    const write = (lines: string[]): Promise<void> =>
      writeFile(
        config,
        [
          'agent:',
          '  listen: 127.0.0.1:0',
          `  data: ${join(base, 'agent')}`,
          `  tls-cert: ${join(base, 'cert.pem')}`,
          `  tls-key: ${join(base, 'key.pem')}`,
          ...lines,
          '',
        ].join('\n'),
      );
    await write(['  log-level: info']);
    const agent = await startAgent(['--config', config]);
    const port = agent.ready.port as number;
    assert.equal(await servedFingerprint(port), first);

    const second = await writePair(base);
    await write(['  log-level: debug', '  max-unauthenticated: 5', '  drain-timeout: 2m']);
    let from = agent.logs.length;
    agent.child.kill('SIGHUP');
    const reloaded = await logLine(agent, from, (e) =>
      /^configuration reloaded/.test(String(e.msg)),
    );
    assert.deepEqual(reloaded.applied, [
      'log-level debug',
      'max-unauthenticated 5, per address 5',
      `TLS certificate ${second}`,
    ]);
    assert.deepEqual(reloaded.restart, ['drain-timeout']);
    assert.equal(await servedFingerprint(port), second, 'new connections get the new certificate');

    // A key that is not the certificate's: nothing changes, the agent keeps serving.
    const { key: otherKey } = await selfSignedCertificate({
      commonName: 'other',
      notAfter: new Date(Date.now() + 86_400_000),
    });
    await writeFile(join(base, 'key.pem'), otherKey);
    from = agent.logs.length;
    agent.child.kill('SIGHUP');
    const failed = await logLine(agent, from, (e) => /^reload failed/.test(String(e.msg)));
    assert.equal(failed.level, 50);
    assert.equal(await servedFingerprint(port), second);
    assert.equal(agent.child.exitCode, null, 'still running');
    assert.equal(await agent.stop(), 0);
  });

  it('a coordinator takes new certificate files and the log level', async () => {
    const base = await tempDir();
    const first = await writePair(base);
    const args = [
      'coordinator',
      '--listen',
      '127.0.0.1:0',
      '--data',
      join(base, 'coordinator'),
      '--tls-cert',
      join(base, 'cert.pem'),
      '--tls-key',
      join(base, 'key.pem'),
      '--config',
      join(base, 'coordinator.yml'),
    ];
    await writeFile(join(base, 'coordinator.yml'), 'coordinator:\n  log-level: info\n');
    const coordinator = await spawnDaemon(args, {
      env: { MUSTER_ADMIN_PASSWORD: 'config-test-password' },
      isReady: (entry) => entry.msg === 'listening' && typeof entry.url === 'string',
    });
    daemons.push(coordinator);
    const port = Number(new URL(String(coordinator.ready.url)).port);
    assert.equal(await servedFingerprint(port), first);
    const second = await writePair(base);
    await writeFile(join(base, 'coordinator.yml'), 'coordinator:\n  log-level: debug\n');
    const from = coordinator.logs.length;
    coordinator.child.kill('SIGHUP');
    const reloaded = await logLine(coordinator, from, (e) =>
      /^configuration reloaded/.test(String(e.msg)),
    );
    assert.deepEqual(reloaded.applied, [`TLS certificate ${second}`, 'log-level debug']);
    assert.deepEqual(reloaded.restart, []);
    assert.equal(await servedFingerprint(port), second);
    // The audit log says so: a change nobody made through the API.
    const login = await call(port, 'POST', '/api/v1/login', {
      user: 'admin',
      password: 'config-test-password',
    });
    const token = (login.body as { token: string }).token;
    const audit = await call(
      port,
      'GET',
      '/api/v1/audit?action=certificate.reload',
      undefined,
      token,
    );
    assert.equal(audit.status, 200, JSON.stringify(audit.body));
    const rows = audit.body as AuditView[];
    assert.ok(
      rows.some((r) => r.actor === 'system' && r.details['fingerprint'] === second),
      JSON.stringify(rows),
    );
    // Limits: the upload quotas change at once; the port still waits for a restart.
    await writeFile(
      join(base, 'coordinator.yml'),
      'coordinator:\n  log-level: debug\n  upload-quota: 2GiB\n  upload-quota-per-user: 1MiB\n',
    );
    const again = coordinator.logs.length;
    coordinator.child.kill('SIGHUP');
    const limits = await logLine(coordinator, again, (e) =>
      /^configuration reloaded/.test(String(e.msg)),
    );
    assert.deepEqual(limits.applied, [`upload-quota ${2 * 1024 ** 3}, per user ${1024 ** 2}`]);
    assert.deepEqual(limits.restart, []);
    const big = Buffer.alloc(2 * 1024 ** 2, 7);
    const refused = await call(
      port,
      'PUT',
      `/api/v1/blobs/${createHash('sha256').update(big).digest('hex')}`,
      big,
      token,
    );
    assert.equal(refused.status, 413, JSON.stringify(refused.body));
    assert.equal((refused.body as { error: { code: string } }).error.code, 'UPLOAD_QUOTA_EXCEEDED');
    assert.equal(await coordinator.stop(), 0);
  });
});
