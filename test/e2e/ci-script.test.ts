/**
 * examples/ci/muster-ci.sh, the curl + jq script docs/api.md shows for driving a build from a CI
 * job, against a real coordinator over HTTPS with a real agent: it uploads the plan's folder,
 * follows the log, downloads the outputs and exits with the build's result; it cancels the build
 * when the job is stopped; it refuses a coordinator that answers with an output path leaving the
 * output folder or bytes that do not match their hash.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { cp, mkdir, readFile, readdir, stat, symlink, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { BuildView } from '../../src/api/views/builds.js';
import { cleanup, makeTempDir, startAgent, waitFor } from '../helpers/agent-process.js';
import {
  ADMIN_PASSWORD,
  killCoordinators,
  startCoordinator,
  testTls,
  type StartedCoordinator,
} from '../helpers/coordinator-process.js';

const root = join(import.meta.dirname, '..', '..', '..');
const script = join(root, 'examples', 'ci', 'muster-ci.sh');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the script; `onStderr` sees its stderr as it comes (to stop it mid-build). */
function runScript(
  args: string[],
  env: NodeJS.ProcessEnv,
  onStderr?: (text: string, stop: () => void) => void,
): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn('sh', [script, ...args], {
      env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    // A bound on the wait, not a check of speed.
    const timer = setTimeout(() => child.kill('SIGKILL'), 240_000);
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      onStderr?.(stderr, () => child.kill('SIGTERM'));
    });
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');

const dirs: string[] = [];
after(async () => {
  await killCoordinators();
  await cleanup(dirs);
});

describe('driving a build from CI with curl (examples/ci/muster-ci.sh)', () => {
  let coordinator: StartedCoordinator;
  let env: NodeJS.ProcessEnv;
  before(async () => {
    const agent = await startAgent();
    coordinator = await startCoordinator({ tls: true });
    await coordinator.addAgent('agent-1', agent);
    env = {
      MUSTER_URL: coordinator.url,
      MUSTER_USER: 'admin',
      MUSTER_PASSWORD: ADMIN_PASSWORD,
      // The coordinator's certificate, as docs/api.md says for a self-signed one.
      CURL_CA_BUNDLE: testTls().cert,
    };
  });

  it('builds the C example, prints its log, downloads its outputs and exits 0', async () => {
    const dir = await makeTempDir('muster-ci-');
    dirs.push(dir);
    await cp(join(root, 'examples', 'c-hello'), dir, { recursive: true });
    const out = join(dir, 'out');
    const run = await runScript([join(dir, 'muster.yml'), out], env);
    assert.equal(run.code, 0, run.stderr);
    const id = /build (\d+) succeeded/.exec(run.stderr)?.[1];
    assert.ok(id, run.stderr);
    assert.match(run.stderr, /uploaded/);
    // The outputs, with their modes: the linked program runs.
    assert.deepEqual((await readdir(out)).sort(), [
      'greet.o',
      'hello',
      'main.o',
      'math.o',
      'util.o',
    ]);
    assert.equal((await stat(join(out, 'hello'))).mode & 0o777, 0o755);
    const build = await coordinator.api<BuildView>('GET', `/builds/${id}`);
    const hello = build.body.tasks.find((t) => t.name === 'link')?.outputs[0];
    assert.equal(
      createHash('sha256')
        .update(await readFile(join(out, 'hello')))
        .digest('hex'),
      hello?.sha256,
    );
    // Again: the coordinator has every file, so nothing is uploaded.
    const again = await runScript([join(dir, 'muster.yml'), out], env);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stderr, /, 0 uploaded/);
  });

  it('sends what git would commit from a checkout: not ignored files, not symlinks', async () => {
    const dir = await makeTempDir('muster-ci-');
    dirs.push(dir);
    await cp(join(root, 'examples', 'c-hello'), dir, { recursive: true });
    // A credential an earlier CI step wrote, ignored; a symlink out of the folder.
    const secret = `{"key": "${randomBytes(16).toString('hex')}"}`;
    await writeFile(join(dir, 'secret.json'), secret);
    await writeFile(join(dir, '.gitignore'), 'secret.json\nout/\n');
    await symlink('/etc/hostname', join(dir, 'hostname'));
    execFileSync('git', ['init', '-q', dir]);
    const run = await runScript([join(dir, 'muster.yml'), join(dir, 'out')], env);
    assert.equal(run.code, 0, run.stderr);
    // Untracked but not ignored files count: c-hello's 10 files and .gitignore.
    assert.match(run.stderr, /muster-ci: 11 files,/);
    const leaked = await fetch(`${coordinator.url}/api/v1/blobs/${sha256(secret)}`, {
      headers: { authorization: `Bearer ${coordinator.token}` },
    });
    assert.equal(leaked.status, 404, 'the ignored file was not uploaded');
  });

  it("exits 1 for a failed build and shows the failing task's log and exit code", async () => {
    const dir = await makeTempDir('muster-ci-');
    dirs.push(dir);
    await writeFile(
      join(dir, 'muster.yml'),
      'name: broken\ntasks:\n  check:\n    run: |\n      echo first line\n      echo "it broke" >&2\n      exit 3\n',
    );
    const run = await runScript([join(dir, 'muster.yml')], env);
    assert.equal(run.code, 1, run.stderr);
    assert.match(run.stdout, /^\[check\] first line$/m);
    assert.match(run.stdout, /^\[check\] it broke$/m);
    assert.match(run.stderr, /build \d+ failed/);
    assert.match(run.stderr, /check: failed \(exit 3\)/);
  });

  it('exits 2 for a plan the coordinator refuses, and for a wrong password', async () => {
    const dir = await makeTempDir('muster-ci-');
    dirs.push(dir);
    await writeFile(join(dir, 'muster.yml'), 'tasks:\n  a:\n    run: true\n    needs: [nowhere]\n');
    const bad = await runScript([join(dir, 'muster.yml')], env);
    assert.equal(bad.code, 2, bad.stderr);
    assert.match(bad.stderr, /HTTP 400/);
    assert.match(bad.stderr, /PLAN_INVALID/);
    assert.match(bad.stderr, /nowhere/);
    const wrong = await runScript([join(dir, 'muster.yml')], { ...env, MUSTER_PASSWORD: 'nope' });
    assert.equal(wrong.code, 2, wrong.stderr);
    assert.match(wrong.stderr, /POST \/login: HTTP 401/);
  });

  it('cancels the build when the CI job stops it', async () => {
    const dir = await makeTempDir('muster-ci-');
    dirs.push(dir);
    await writeFile(join(dir, 'muster.yml'), 'tasks:\n  wait:\n    run: echo waiting; sleep 120\n');
    let stopped = false;
    const run = await runScript([join(dir, 'muster.yml')], env, (text, stop) => {
      const id = /build (\d+):/.exec(text)?.[1];
      if (stopped || id === undefined) return;
      stopped = true;
      // Stopped once its task runs on the agent.
      void waitFor(async () => {
        const build = await coordinator.api<BuildView>('GET', `/builds/${id}`);
        return build.body.tasks[0]?.status === 'running';
      }, 60_000).then(stop);
    });
    assert.equal(run.code, 1, run.stderr);
    assert.match(run.stderr, /stopped/);
    const id = /build (\d+):/.exec(run.stderr)?.[1];
    await waitFor(async () => {
      const build = await coordinator.api<BuildView>('GET', `/builds/${id}`);
      return build.body.status === 'cancelled';
    }, 60_000);
  });
});

describe('muster-ci.sh against a hostile coordinator', () => {
  let server: Server;
  let url = '';
  /** The outputs the fake coordinator claims, and the bytes it serves for each hash. */
  let outputs: { path: string; sha256: string; size: number; mode: number }[] = [];
  let blobs = new Map<string, Buffer>();
  /** The answer to GET /builds/1/logs?after=N. */
  let logs: (after: number) => unknown = () => ({ chunks: [], next: 0 });
  /** GET /builds/1 gets no answer at all. */
  let silent = false;
  /** The build's status at each GET /builds/1 (the last one stays); counted in `statusGets`. */
  let statuses = ['succeeded'];
  let statusGets = 0;
  before(async () => {
    server = createServer((request, response) => {
      const send = (body: unknown): void => {
        response.setHeader('content-type', 'application/json');
        response.end(JSON.stringify(body));
      };
      request.resume();
      request.on('end', () => {
        const path = request.url ?? '';
        if (path === '/api/v1/login') send({ token: 'mst_fake' });
        else if (path === '/api/v1/logout') response.end();
        else if (path === '/api/v1/blobs/missing') send({ missing: [] });
        else if (path === '/api/v1/builds/1' && silent) return;
        else if (path === '/api/v1/builds' || path === '/api/v1/builds/1')
          send({
            id: 1,
            status:
              path === '/api/v1/builds'
                ? 'queued'
                : (statuses[Math.min(statusGets++, statuses.length - 1)] ?? 'succeeded'),
            tasks: [{ name: 't', status: 'succeeded', exitCode: 0, error: null, outputs }],
          });
        else if (path.startsWith('/api/v1/builds/1/logs'))
          send(logs(Number(new URL(path, 'http://x').searchParams.get('after'))));
        else if (path.startsWith('/api/v1/blobs/'))
          response.end(blobs.get(path.slice('/api/v1/blobs/'.length)) ?? 'unknown');
        else {
          response.statusCode = 404;
          send({ error: { code: 'NOT_FOUND', message: path } });
        }
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );

  /**
   * Runs the script against the fake coordinator claiming `claimed` outputs (path, content,
   * mode), after `prepare` set up the output folder; a good output comes first each time.
   */
  async function attempt(
    claimed: { path: string; text: string; mode?: number; claimedSha?: string }[],
    prepare: (out: string) => Promise<void> = async () => undefined,
  ): Promise<{ run: Run; out: string }> {
    const dir = await makeTempDir('muster-ci-');
    dirs.push(dir);
    await writeFile(join(dir, 'muster.yml'), 'tasks:\n  t:\n    run: true\n');
    const out = join(dir, 'deep', 'out');
    await mkdir(out, { recursive: true });
    await prepare(out);
    const all = [{ path: 'good.txt', text: 'good' }, ...claimed];
    blobs = new Map(all.map((o) => [sha256(o.text), Buffer.from(o.text)]));
    outputs = all.map((o) => ({
      path: o.path,
      sha256: o.claimedSha ?? sha256(o.text),
      size: o.text.length,
      mode: o.mode ?? 0o644,
    }));
    const run = await runScript([join(dir, 'muster.yml'), out], {
      MUSTER_URL: url,
      MUSTER_TOKEN: 'mst_given',
    });
    return { run, out };
  }

  it('refuses paths that leave the output folder or enter .git, writing no output at all', async () => {
    for (const path of [
      '../escaped',
      '/tmp/muster-ci-absolute',
      'a/../../escaped',
      './a',
      'a//b',
      '.git/config',
      'sub/.GIT/hooks/post-checkout',
    ]) {
      const { run, out } = await attempt([{ path, text: 'x' }]);
      assert.equal(run.code, 2, `${path}: ${run.stderr}`);
      assert.match(run.stderr, /refusing output .*no output written/, path);
      assert.deepEqual(await readdir(join(out, '..')), ['out'], path);
      assert.deepEqual(await readdir(out), [], path);
    }
  });

  it('writes nothing through a symlink or over a directory already in the output folder', async () => {
    const elsewhere = await makeTempDir('muster-ci-elsewhere-');
    dirs.push(elsewhere);
    const linked = await attempt([{ path: 'lib/evil.so', text: 'x' }], (out) =>
      symlink(elsewhere, join(out, 'lib')),
    );
    assert.equal(linked.run.code, 2, linked.run.stderr);
    assert.match(linked.run.stderr, /lib is a symlink/);
    assert.deepEqual(await readdir(elsewhere), []);
    const dir = await attempt([{ path: 'bin', text: 'x' }], (out) => mkdir(join(out, 'bin')));
    assert.equal(dir.run.code, 2, dir.run.stderr);
    assert.match(dir.run.stderr, /bin is a directory/);
    assert.deepEqual(await readdir(join(dir.out, 'bin')), []);
    assert.deepEqual(await readdir(dir.out), ['bin']);
  });

  it('refuses bytes that do not match their hash, writing no output at all', async () => {
    const { run, out } = await attempt([
      { path: 'result.bin', text: 'something else', claimedSha: sha256('expected') },
    ]);
    assert.equal(run.code, 2, run.stderr);
    assert.match(run.stderr, /result.bin: hash mismatch/);
    assert.deepEqual(await readdir(out), []);
  });

  it('gives an output no mode bits above 0777 (no setuid file from a coordinator)', async () => {
    const { run, out } = await attempt([{ path: 'tool', text: 'x', mode: 0o4755 }]);
    assert.equal(run.code, 0, run.stderr);
    assert.equal((await stat(join(out, 'tool'))).mode & 0o7777, 0o755);
    assert.equal(await readFile(join(out, 'good.txt'), 'utf8'), 'good');
  });

  it('reads a long log to its end, asking the status between pages, and refuses a steering position', async () => {
    try {
      // 250 pages of one line each; the build runs for the first status asked, then has ended.
      const PAGES = 250;
      logs = (after) =>
        after < PAGES
          ? { chunks: [{ task: 't', text: `line ${after + 1}\n` }], next: after + 1 }
          : { chunks: [], next: after };
      statuses = ['running', 'succeeded'];
      statusGets = 0;
      const long = await attempt([]);
      assert.equal(long.run.code, 0, long.run.stderr);
      const lines = long.run.stdout.trimEnd().split('\n');
      assert.equal(lines.length, PAGES);
      assert.equal(lines[0], '[t] line 1');
      assert.equal(lines[PAGES - 1], `[t] line ${PAGES}`);
      // Once after the first 100 pages (still running), then ended: read to the end.
      assert.equal(statusGets, 2);
      // A position that is not a whole number (here, one that would add a query parameter).
      for (const next of ['5&limit=1000000', -1, 1.5, 1e20]) {
        logs = () => ({ chunks: [], next });
        const steered = await attempt([]);
        assert.equal(steered.run.code, 2, `${next}: ${steered.run.stderr}`);
        assert.match(steered.run.stderr, /the answer has no log position/);
      }
    } finally {
      logs = () => ({ chunks: [], next: 0 });
      statuses = ['succeeded'];
    }
  });

  it('gives up on a coordinator that stops answering (MUSTER_CI_STALL)', async () => {
    silent = true;
    try {
      const dir = await makeTempDir('muster-ci-');
      dirs.push(dir);
      await writeFile(join(dir, 'muster.yml'), 'tasks:\n  t:\n    run: true\n');
      const run = await runScript([join(dir, 'muster.yml')], {
        MUSTER_URL: url,
        MUSTER_TOKEN: 'mst_given',
        MUSTER_CI_STALL: '2',
      });
      assert.equal(run.code, 2, run.stderr);
      assert.match(run.stderr, /GET \/builds\/1: no answer/);
    } finally {
      silent = false;
    }
  });

  it("prefixes the coordinator's words, so they never start a line a CI runner reads", async () => {
    const dir = await makeTempDir('muster-ci-');
    dirs.push(dir);
    await writeFile(join(dir, 'muster.yml'), 'tasks:\n  t:\n    run: true\n');
    const run = await runScript([join(dir, 'muster.yml')], {
      MUSTER_URL: `${url}/nowhere`,
      MUSTER_TOKEN: 'mst_given',
    });
    assert.equal(run.code, 2, run.stderr);
    for (const line of run.stderr.trimEnd().split('\n')) assert.match(line, /^muster-ci: /);
  });
});
