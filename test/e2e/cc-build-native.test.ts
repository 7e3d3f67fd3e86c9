/**
 * `muster build`'s native front end (native/build-front.c), run as bin/muster runs it:
 * `muster-cc --build-front-end NODE CLI build ARGS...`. With a Node that does not exist, a build
 * that succeeds was done by the native front end alone (the per-user service hosting it); a
 * fake Node that records its arguments shows what is handed to the Node CLI, and when: before
 * the command for anything unusual (unknown options, a bad placement, in-process hosting asked,
 * no service, an unsafe socket directory), after it when the service closed the build early.
 * The services run without a coordinator (an address nothing answers on).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import {
  chmod,
  lstat,
  mkdir,
  readFile,
  readdir,
  readlink,
  rm,
  symlink,
  writeFile,
} from 'node:fs/promises';
import { join, relative } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { cleanup, makeTempDir, waitFor } from '../helpers/agent-process.js';
import {
  compileServicePids,
  compileServiceRuntime,
  stopCompileServices,
} from '../helpers/cc-service.js';
import { cliEntry as cliPath, runCli } from '../helpers/cli.js';

const launcher = fileURLToPath(new URL('../../native/muster-cc', import.meta.url));
const musterBin = fileURLToPath(new URL('../../../bin/muster', import.meta.url));
const dirs: string[] = [];
after(async () => {
  await stopCompileServices();
  await cleanup(dirs);
});

interface Ran {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * The native front end with `node` as its Node, in `cwd`; bounded at 60 s. `meanwhile` gets
 * its pid while it runs.
 */
function front(
  node: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  cwd: string,
  meanwhile?: (pid: number) => Promise<void>,
  cli = cliPath,
): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const child = spawn(launcher, ['--build-front-end', node, cli, 'build', ...args], {
      cwd,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    if (meanwhile !== undefined && child.pid !== undefined)
      meanwhile(child.pid).catch((err: unknown) => {
        child.kill('SIGKILL');
        reject(err instanceof Error ? err : new Error(String(err)));
      });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.once('error', reject);
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

describe("muster build's native front end", () => {
  let env: NodeJS.ProcessEnv;
  let work: string;
  let fakeNode: string;
  let handedOver: string;

  before(async () => {
    work = await makeTempDir('muster-build-native-');
    dirs.push(work);
    const home = join(work, 'home');
    env = {
      PATH: process.env['PATH'],
      HOME: home,
      XDG_CACHE_HOME: join(home, '.cache'),
      XDG_RUNTIME_DIR: await compileServiceRuntime(),
      MUSTER_URL: 'http://127.0.0.1:9',
      MUSTER_TOKEN: 'none',
      LC_ALL: 'C',
      // The builds' private directories: gone once each build ends.
      TMPDIR: join(work, 'tmp'),
    };
    await mkdir(join(work, 'tmp'));
    handedOver = join(work, 'handed-over');
    fakeNode = join(work, 'fake-node');
    await writeFile(fakeNode, `#!/bin/sh\nprintf '%s\\n' "$@" > '${handedOver}'\nexit 42\n`);
    await chmod(fakeNode, 0o755);
    await writeFile(join(work, 'x.c'), 'int x(int a) { return a + 1; }\n');
  });

  /** What the fake Node was given (its argv after itself), removing the record. */
  async function handover(): Promise<string[]> {
    const text = await readFile(handedOver, 'utf8');
    await writeFile(handedOver, '');
    return text.split('\n').slice(0, -1);
  }

  it('starts the service itself when none runs, and hands over when it cannot', async () => {
    // No socket directory yet (a first use): the Node CLI makes it, and starts the service.
    const first = await front(fakeNode, ['--', 'true'], env, work);
    assert.equal(first.code, 42);
    assert.deepEqual(await handover(), [cliPath, 'build', '--', 'true']);
    const dir = join(env['XDG_RUNTIME_DIR'] ?? '', 'muster');
    await mkdir(dir, { mode: 0o700 });
    // A Node that cannot run the service: the front end starts it (its log is made, the
    // failure marked for the launchers), sees it end, and hands the build over.
    const failing = await front(fakeNode, ['--', 'true'], env, work);
    assert.equal(failing.code, 42);
    assert.deepEqual(await handover(), [cliPath, 'build', '--', 'true']);
    assert.ok(existsSync(join(dir, 'cc-serve.log')));
    assert.ok(existsSync(join(dir, 'cc-start-failed')));
    // For 10 s after a failed start nothing starts it again (as for the launchers): not waited.
    await rm(join(dir, 'cc-start-failed'));
    // A real Node, recording what it is asked to run: only the service, started by the native
    // front end, which then hosts the build. The CLI given relative to the build's directory is
    // made absolute (the service runs in /), and so are the paths Node reads from the
    // environment, folded as path.resolve folds them.
    const calls = join(work, 'node-calls');
    const recording = join(work, 'recording-node');
    await writeFile(
      recording,
      `#!/bin/sh\nprintf '%s\\n' "$*" >> '${calls}'\nexec '${process.execPath}' "$@"\n`,
    );
    await chmod(recording, 0o755);
    const configured = { ...env, MUSTER_CONFIG_DIR: './cfg//x/../../cfg2/.' };
    const ran = await front(
      recording,
      ['--', 'true'],
      configured,
      work,
      undefined,
      relative(work, cliPath),
    );
    assert.equal(ran.code, 0, ran.stderr);
    assert.match(ran.stderr, /^muster: 0 jobs \(0 compiles\)/m);
    const socket = join(dir, 'cc.sock');
    assert.deepEqual((await readFile(calls, 'utf8')).split('\n').slice(0, -1), [
      `${cliPath} cc --serve --socket ${socket} --idle-exit 10m`,
    ]);
    const pids = await compileServicePids(env['XDG_RUNTIME_DIR'] ?? '');
    assert.equal(pids.length, 1);
    const pid = pids[0] ?? 0;
    // A daemon: in /, in a session of its own, its log the user's alone.
    assert.equal(await readlink(`/proc/${pid}/cwd`), '/');
    const stat = (await readFile(`/proc/${pid}/stat`, 'utf8')).replace(/^.*\) /, '').split(' ');
    assert.equal(Number(stat[3]), pid, 'its session id is its pid');
    assert.equal((await lstat(join(dir, 'cc-serve.log'))).mode & 0o777, 0o600);
    const environ = (await readFile(`/proc/${pid}/environ`, 'utf8')).split('\0');
    assert.ok(environ.includes(`MUSTER_CONFIG_DIR=${join(work, 'cfg2')}`), environ.join(' '));
  });

  it('runs a build with no Node at all once the service runs', async () => {
    const ran = await front(
      '/nonexistent/node',
      ['--json', '--', 'sh', '-c', 'gcc -c x.c -o x.o && echo made; exit 3'],
      env,
      work,
    );
    assert.equal(ran.code, 3, ran.stderr);
    // --json: the command's stdout goes to stderr, the summary document to stdout.
    assert.match(ran.stderr, /^made$/m);
    assert.match(
      ran.stderr,
      /^muster: 1 job \(1 compile\): 0 remote, 1 local, 0 from cache, 1 fallback \(no coordinator\); [\d.]+ s\n$/m,
    );
    const summary = JSON.parse(ran.stdout) as Record<string, unknown>;
    assert.equal(summary['exitCode'], 3);
    assert.equal(summary['compiles'], 1);
    assert.equal(summary['local'], 1);
    assert.equal(summary['buildId'], null);
    assert.equal(typeof summary['durationMs'], 'number');
    assert.ok((await readdir(work)).includes('x.o'));
    // Nothing was handed over, and the build's private directory is gone.
    assert.deepEqual(await handover().catch(() => []), []);
    const left = await readdir(join(work, 'tmp'));
    assert.deepEqual(
      left.filter((name) => name.startsWith('muster-build-')),
      [],
    );
  });

  it('ends as the command ended: its code, its signal, a missing command', async () => {
    const none = '/nonexistent/node';
    const killed = await front(none, ['--', 'sh', '-c', 'kill -TERM $$'], env, work);
    assert.equal(killed.signal, 'SIGTERM', killed.stderr);
    assert.match(killed.stderr, /^muster: 0 jobs \(0 compiles\)/m);
    const missing = await front(none, ['--', 'no-such-command-here'], env, work);
    assert.equal(missing.code, 127);
    assert.match(missing.stderr, /^muster: no-such-command-here: command not found$/m);
    const options = await front(none, ['--placement', 'local', '--no-cache', 'true'], env, work);
    assert.equal(options.code, 0, options.stderr);
  });

  it('hands to the Node CLI whatever it does not do itself, before the command runs', async () => {
    for (const [args, extra] of [
      [['--help'], {}],
      [['--placement', 'elsewhere', '--', 'true'], {}],
      [['--', 'true'], { MUSTER_BUILD_SERVICE: 'in-process' }],
      [['--', 'true'], { MUSTER_CC_PLACEMENT: 'nowhere' }],
      [[], {}],
    ] as const) {
      const ran = await front(fakeNode, [...args], { ...env, ...extra }, work);
      assert.equal(ran.code, 42, `${args.join(' ')}: ${ran.stderr}`);
      assert.deepEqual(await handover(), [cliPath, 'build', ...args]);
    }
    // A socket directory that is not the user's alone: never used.
    const dir = join(env['XDG_RUNTIME_DIR'] ?? '', 'muster');
    await chmod(dir, 0o755);
    try {
      const ran = await front(fakeNode, ['--', 'true'], env, work);
      assert.equal(ran.code, 42);
      assert.deepEqual(await handover(), [cliPath, 'build', '--', 'true']);
    } finally {
      await chmod(dir, 0o700);
    }
  });

  it('passes SIGTERM on to the command and ignores SIGINT, as the Node front end does', async () => {
    const none = '/nonexistent/node';
    const started = join(work, 'started-term');
    const term = await front(
      none,
      ['--', 'sh', '-c', `touch '${started}'; exec sleep 30`],
      env,
      work,
      async (pid) => {
        await waitFor(() => existsSync(started), 30_000, 'the command to start');
        process.kill(pid, 'SIGTERM');
      },
    );
    assert.equal(term.signal, 'SIGTERM', term.stderr);
    assert.match(term.stderr, /^muster: 0 jobs \(0 compiles\)/m);
    // SIGINT to the front end alone (a terminal sends it to the whole group): the command goes on.
    const started2 = join(work, 'started-int');
    const int = await front(
      none,
      ['--', 'sh', '-c', `touch '${started2}'; sleep 1; exit 5`],
      env,
      work,
      async (pid) => {
        await waitFor(() => existsSync(started2), 30_000, 'the command to start');
        process.kill(pid, 'SIGINT');
      },
    );
    assert.equal(int.code, 5, int.stderr);
    assert.match(int.stderr, /^muster: 0 jobs \(0 compiles\)/m);
  });

  it('has the Node CLI finish a build the service closed early (it stopped)', async () => {
    const stop = `"${musterBin}" cc --stop >/dev/null`;
    const ran = await front(fakeNode, ['--', 'sh', '-c', stop], env, work);
    assert.equal(ran.code, 42, ran.stderr);
    const [cli, command, state, ...rest] = await handover();
    assert.equal(cli, cliPath);
    assert.equal(command, 'build-finish');
    assert.deepEqual(rest, []);
    const parsed = JSON.parse(state ?? '') as {
      dir: string;
      closed: { type: string; early?: boolean } | null;
      code: number;
      signal: number | null;
      json: boolean;
    };
    assert.equal(parsed.closed?.type, 'build-closed');
    assert.equal(parsed.closed?.early, true);
    assert.equal(parsed.code, 0);
    assert.equal(parsed.signal, null);
    // The real Node CLI, given that state, prints the summary and removes the directory.
    const finished = await runCli(['build-finish', state ?? ''], { env, cwd: work });
    assert.equal(finished.code, 0, finished.stderr);
    assert.match(finished.stderr, /\(no coordinator\)/);
    await assert.rejects(readdir(parsed.dir));
  });

  it('build-finish takes only a build directory of this user and a well-formed state', async () => {
    const made = async (name: string, mode = 0o700): Promise<string> => {
      const dir = join(work, 'tmp', name);
      await mkdir(dir, { mode });
      await chmod(dir, mode);
      return dir;
    };
    const good = {
      dir: await made('muster-build-lost1'),
      closed: null,
      lost: true,
      startedAt: Date.now(),
      code: 0,
      signal: null,
      json: false,
    };
    const open = await made('muster-build-open', 0o755);
    await symlink(good.dir, join(work, 'tmp', 'muster-build-link'));
    for (const state of [
      'not json',
      JSON.stringify({ ...good, dir: '/etc' }),
      JSON.stringify({ ...good, dir: 'muster-build-x' }),
      JSON.stringify({ ...good, dir: `${good.dir}/../muster-build-lost1` }),
      JSON.stringify({ ...good, dir: join(work, 'tmp', 'muster-build-missing') }),
      JSON.stringify({ ...good, dir: open }),
      JSON.stringify({ ...good, dir: join(work, 'tmp', 'muster-build-link') }),
    ]) {
      const ran = await runCli(['build-finish', state], { env, cwd: work });
      assert.equal(ran.code, 2, `${state}: ${ran.stderr}`);
      assert.match(ran.stderr, /build-finish: /);
    }
    assert.ok(existsSync(open), 'a directory open to others is left alone');
    // A directory of its own with a bad rest: refused, and the directory still goes.
    for (const rest of [
      { closed: { type: 'say', text: 'x' } },
      { code: 300 },
      { signal: 99 },
      { lost: 'yes' },
    ]) {
      const dir = await made('muster-build-bad');
      const ran = await runCli(['build-finish', JSON.stringify({ ...good, ...rest, dir })], {
        env,
        cwd: work,
      });
      assert.equal(ran.code, 2, `${JSON.stringify(rest)}: ${ran.stderr}`);
      assert.equal(existsSync(dir), false);
    }
    const lost = await runCli(['build-finish', JSON.stringify(good)], { env, cwd: work });
    assert.equal(lost.code, 0, lost.stderr);
    assert.match(lost.stderr, /ended before it closed the build: its counts are lost/);
    assert.equal(existsSync(good.dir), false);
  });

  it('has the Node CLI finish a build whose service was killed during the command', async () => {
    // A service of its own again (the test before stopped it).
    const first = await runCli(['build', '--', 'true'], { env, cwd: work, command: musterBin });
    assert.equal(first.code, 0, first.stderr);
    const pid = (await compileServicePids(env['XDG_RUNTIME_DIR'] ?? '')).at(-1);
    assert.ok(pid !== undefined);
    const started = join(work, 'started-kill');
    const ran = await front(
      fakeNode,
      ['--json', '--', 'sh', '-c', `touch '${started}'; sleep 1; exit 4`],
      env,
      work,
      async () => {
        await waitFor(() => existsSync(started), 30_000, 'the command to start');
        process.kill(pid, 'SIGKILL');
      },
    );
    assert.equal(ran.code, 42, ran.stderr);
    const [, command, state] = await handover();
    assert.equal(command, 'build-finish');
    const parsed = JSON.parse(state ?? '') as Record<string, unknown>;
    assert.equal(parsed['closed'], null);
    assert.equal(parsed['lost'], true);
    assert.equal(parsed['code'], 4);
    assert.equal(parsed['json'], true);
    const finished = await runCli(['build-finish', state ?? ''], { env, cwd: work });
    assert.equal(finished.code, 4, finished.stderr);
    assert.match(finished.stderr, /its counts are lost/);
    assert.equal((JSON.parse(finished.stdout) as { exitCode: number }).exitCode, 4);
  });
});
