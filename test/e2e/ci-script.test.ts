/**
 * examples/ci/muster-ci.sh, the curl + jq script docs/api.md shows for driving a build from a CI
 * job, against a real coordinator over HTTPS with a real agent: it uploads the plan's folder,
 * follows the log, downloads the outputs and exits with the build's result; it cancels the build
 * when the job is stopped; it refuses a coordinator that answers with an output path leaving the
 * output folder or bytes that do not match their hash.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cp, mkdir, readFile, readdir, stat, writeFile } from 'node:fs/promises';
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
  let outputs: unknown[] = [];
  let blob = Buffer.from('');
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
        else if (path === '/api/v1/builds' || path === '/api/v1/builds/1')
          send({
            id: 1,
            status: 'succeeded',
            tasks: [{ name: 't', status: 'succeeded', exitCode: 0, error: null, outputs }],
          });
        else if (path.startsWith('/api/v1/builds/1/logs')) send({ chunks: [], next: 0 });
        else if (path.startsWith('/api/v1/blobs/')) response.end(blob);
        else {
          response.statusCode = 404;
          send({ error: { code: 'NOT_FOUND', message: path } });
        }
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  async function attempt(
    path: string,
    bytes: string,
    claimed: string,
  ): Promise<{ run: Run; out: string }> {
    const dir = await makeTempDir('muster-ci-');
    dirs.push(dir);
    await writeFile(join(dir, 'muster.yml'), 'tasks:\n  t:\n    run: true\n');
    const out = join(dir, 'deep', 'out');
    await mkdir(out, { recursive: true });
    blob = Buffer.from(bytes);
    outputs = [{ path, sha256: claimed, size: blob.length, mode: 0o644 }];
    const run = await runScript([join(dir, 'muster.yml'), out], {
      MUSTER_URL: url,
      MUSTER_TOKEN: 'mst_given',
    });
    return { run, out };
  }

  it('refuses output paths that leave the output folder', async () => {
    const sha = createHash('sha256').update('x').digest('hex');
    for (const path of [
      '../escaped',
      '/tmp/muster-ci-absolute',
      'a/../../escaped',
      './a',
      'a//b',
    ]) {
      const { run, out } = await attempt(path, 'x', sha);
      assert.equal(run.code, 2, `${path}: ${run.stderr}`);
      assert.match(run.stderr, /refusing output path/, path);
      assert.deepEqual(await readdir(join(out, '..')), ['out'], path);
      assert.deepEqual(await readdir(out), [], path);
    }
  });

  it('refuses bytes that do not match their hash', async () => {
    const sha = createHash('sha256').update('expected').digest('hex');
    const { run, out } = await attempt('result.bin', 'something else', sha);
    assert.equal(run.code, 2, run.stderr);
    assert.match(run.stderr, /result.bin: hash mismatch/);
    assert.deepEqual(await readdir(out), []);
  });
});
