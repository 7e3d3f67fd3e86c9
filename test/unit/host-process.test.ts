/**
 * The host runtime as the agent sees it: a bundle dir is built in a temp dir from the compiled
 * host and core extension (plus test extensions), host/main.js is forked exactly as the agent
 * forks it, and the tests speak the IPC protocol of src/protocol/host-messages.ts.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { fork } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type {
  AgentToHost,
  HostStartMessage,
  HostToAgent,
} from '../../src/protocol/host-messages.js';
import type { TaskResult } from '../../src/protocol/task-types.js';

const distSrc = fileURLToPath(new URL('../../src/', import.meta.url));
const WAIT_MS = 15_000;

const scratch = mkdtempSync(join(tmpdir(), 'muster-host-test-'));
const hosts: HostProcess[] = [];
const groupsSeen = new Set<number>();

after(() => {
  for (const host of hosts) host.kill();
  for (const pgid of groupsSeen) {
    try {
      process.kill(-pgid, 'SIGKILL');
    } catch {
      // gone, as it should be
    }
  }
  rmSync(scratch, { recursive: true, force: true });
});

type ExtensionFiles = Record<string, string>;
let bundleCount = 0;

/** A bundle dir like the agent materialises: package.json, host/, extensions/<name>/. */
function makeBundle(extra: Record<string, ExtensionFiles> = {}): string {
  const dir = join(scratch, `bundle-${++bundleCount}`);
  cpSync(join(distSrc, 'host'), join(dir, 'host'), { recursive: true });
  cpSync(join(distSrc, 'extensions/core'), join(dir, 'extensions/core'), { recursive: true });
  writeFileSync(join(dir, 'package.json'), '{"type":"module"}\n');
  for (const [folder, files] of Object.entries(extra)) {
    for (const [name, text] of Object.entries(files)) {
      mkdirSync(dirname(join(dir, 'extensions', folder, name)), { recursive: true });
      writeFileSync(join(dir, 'extensions', folder, name), text);
    }
  }
  return dir;
}

/** Polls `check` every 20 ms until it is true; fails after `ms`. */
async function waitUntil(what: string, check: () => boolean, ms = WAIT_MS): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/**
 * True while a process of group `pgid` is alive. kill(-pgid, 0) also reaches zombies that wait for
 * init to reap them, so on Linux those are not counted.
 */
function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
  } catch (err) {
    if ((err as { code?: string }).code === 'ESRCH') return false;
  }
  if (!existsSync('/proc/self/stat')) return true;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue;
    }
    const [state, , pgrp] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(pgrp) === pgid && state !== 'Z') return true;
  }
  return false;
}

interface TaskRecord {
  result?: TaskResult;
  stdout: string;
  stderr: string;
  log: string;
  pids: number[];
  exitedPids: number[];
  /** Message kinds in arrival order. */
  order: string[];
}

class HostProcess {
  readonly child: ChildProcess;
  readonly messages: HostToAgent[] = [];
  readonly tasks = new Map<string, TaskRecord>();
  stderr = '';
  exit: { code: number | null; signal: string | null } | undefined;
  private taskCount = 0;

  constructor(
    readonly bundleDir: string,
    readonly blobDir: string,
    env: Record<string, string> = {},
  ) {
    mkdirSync(blobDir, { recursive: true });
    this.child = fork(join(bundleDir, 'host/main.js'), [], {
      serialization: 'advanced',
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      env: {
        ...process.env,
        MUSTER_HOST_PROTOCOL: '1',
        MUSTER_BUNDLE_DIR: bundleDir,
        MUSTER_BLOB_DIR: blobDir,
        ...env,
      },
    });
    hosts.push(this);
    this.child.stderr?.on('data', (d: Buffer) => (this.stderr += d.toString()));
    this.child.stdout?.resume();
    this.child.on('message', (msg: HostToAgent) => this.onMessage(msg));
    this.child.on('exit', (code, signal) => (this.exit = { code, signal }));
  }

  static start(extra: Record<string, ExtensionFiles> = {}, env?: Record<string, string>) {
    const bundle = makeBundle(extra);
    return new HostProcess(bundle, join(scratch, `blobs-${bundleCount}`), env);
  }

  private onMessage(msg: HostToAgent): void {
    this.messages.push(msg);
    if (!('taskId' in msg)) return;
    const task = this.record(msg.taskId);
    task.order.push(msg.t);
    if (msg.t === 'done') task.result = msg.result;
    else if (msg.t === 'process') {
      task.pids.push(msg.pid);
      groupsSeen.add(msg.pid);
    } else if (msg.t === 'process-exit') task.exitedPids.push(msg.pid);
    else if (msg.t === 'output') task[msg.stream] += Buffer.from(msg.data).toString('utf8');
  }

  record(taskId: string): TaskRecord {
    let task = this.tasks.get(taskId);
    if (task === undefined) {
      task = { stdout: '', stderr: '', log: '', pids: [], exitedPids: [], order: [] };
      this.tasks.set(taskId, task);
    }
    return task;
  }

  send(msg: AgentToHost): void {
    this.child.send(msg);
  }

  async ready(): Promise<Extract<HostToAgent, { t: 'ready' }>> {
    await waitUntil('ready', () => this.find('ready') !== undefined || this.exit !== undefined);
    const ready = this.find('ready');
    assert.ok(ready, `host did not get ready: ${this.stderr}`);
    return ready;
  }

  find<T extends HostToAgent['t']>(t: T): Extract<HostToAgent, { t: T }> | undefined {
    return this.messages.find((m) => m.t === t) as Extract<HostToAgent, { t: T }> | undefined;
  }

  /** Sends a start message with a fresh work dir; returns the task id. */
  start(spec: Partial<HostStartMessage> & { operation: string }): HostStartMessage {
    const taskId = spec.taskId ?? `task-${++this.taskCount}`;
    const workDir = spec.workDir ?? join(scratch, 'work', `${bundleCount}-${taskId}`);
    mkdirSync(workDir, { recursive: true });
    const msg: HostStartMessage = {
      t: 'start',
      taskId,
      extension: 'core',
      input: null,
      inputs: [],
      outputs: [],
      env: {},
      ...spec,
      workDir,
    };
    this.send(msg);
    return msg;
  }

  async done(taskId: string, ms = WAIT_MS): Promise<TaskRecord & { result: TaskResult }> {
    await waitUntil(`task ${taskId}`, () => this.tasks.get(taskId)?.result !== undefined, ms);
    return this.record(taskId) as TaskRecord & { result: TaskResult };
  }

  async run(spec: Partial<HostStartMessage> & { operation: string }) {
    const msg = this.start(spec);
    return { ...(await this.done(msg.taskId)), workDir: msg.workDir };
  }

  async exited(): Promise<{ code: number | null; signal: string | null }> {
    await waitUntil('host exit', () => this.exit !== undefined);
    return this.exit as { code: number | null; signal: string | null };
  }

  kill(): void {
    if (this.exit === undefined) this.child.kill('SIGKILL');
  }
}

function sha256(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

function putBlob(blobDir: string, content: string): string {
  const sha = sha256(content);
  mkdirSync(join(blobDir, sha.slice(0, 2)), { recursive: true });
  writeFileSync(join(blobDir, sha.slice(0, 2), sha), content, { mode: 0o444 });
  return sha;
}

const helloExtension: ExtensionFiles = {
  'muster-extension.json': JSON.stringify({ name: 'hello', version: '2.3.4', main: 'index.js' }),
  'index.js': `
    import { greeting } from './lib/greeting.js';
    export const operations = {
      async greet(input, { taskId, log, stdout, stderr, env }) {
        log('greeting ' + input.name);
        stdout(new TextEncoder().encode('out:' + taskId));
        stderr('err');
        return { greeting: greeting(input.name), hasMusterEnv: Object.keys(env).some((k) => k.startsWith('MUSTER_')), foo: env.FOO };
      },
      async fail() { throw Object.assign(new Error('bad input here'), { code: 'INVALID_INPUT' }); },
      async oops() { throw new Error('plain failure'); },
      async exit3() { return { exitCode: 3, signal: null, note: 'x' }; },
      async notJson() { return { f: 10n }; },
      async stubborn() { return new Promise(() => {}); },
    };
  `,
  'lib/greeting.js': `export const greeting = (name) => 'hello ' + name;`,
};

const cjsExtension: ExtensionFiles = {
  'muster-extension.json': JSON.stringify({ name: 'legacy', version: '1.0.0', main: 'main.cjs' }),
  'main.cjs': `exports.operations = { async ping(input) { return { pong: input } } };`,
};

void describe('host process', () => {
  let host: HostProcess;

  before(async () => {
    mkdirSync(join(scratch, 'work'), { recursive: true });
    host = HostProcess.start({ hello: helloExtension, legacy: cjsExtension });
    await host.ready();
  });

  void it('says ready with the protocol, runtime version and every extension', async () => {
    const ready = await host.ready();
    assert.equal(ready.protocol, 1);
    const pkg = JSON.parse(readFileSync(join(distSrc, '../../package.json'), 'utf8')) as {
      version: string;
    };
    assert.equal(ready.runtimeVersion, pkg.version);
    assert.deepEqual(
      ready.extensions.map((e) => e.name),
      ['core', 'hello', 'legacy'],
    );
    const core = ready.extensions.find((e) => e.name === 'core');
    assert.equal(core?.version, pkg.version);
    for (const op of ['noop', 'run', 'files.put', 'files.list', 'sleep']) {
      assert.ok(core?.operations.includes(op), op);
    }
    assert.ok(!core?.operations.includes('crash'), 'crash needs MUSTER_HOST_TEST_HOOKS=1');
  });

  void it('core/noop returns its input', async () => {
    const { result } = await host.run({ operation: 'noop', input: { a: [1, 'x'] } });
    assert.equal(result.status, 'succeeded');
    assert.deepEqual(result.value, { a: [1, 'x'] });
    assert.equal(typeof result.durationMs, 'number');
    const nothing = await host.run({ operation: 'noop' });
    assert.equal(nothing.result.value, null);
  });

  void it('core/run streams stdout and stderr and reports the exit code', async () => {
    const task = await host.run({
      operation: 'run',
      input: { command: 'echo one; echo two >&2; printf "%s|%s" "$FOO" "$MUSTER_BLOB_DIR"' },
      env: { FOO: 'from-task' },
    });
    assert.equal(task.result.status, 'succeeded', JSON.stringify(task.result));
    assert.equal(task.result.exitCode, 0);
    assert.equal(task.result.signal, null);
    assert.equal(task.stdout, 'one\nfrom-task|');
    assert.equal(task.stderr, 'two\n');
    assert.equal(task.pids.length, 1);
    assert.deepEqual(task.exitedPids, task.pids);
    assert.equal(task.order.at(-1), 'done');
    assert.ok(task.order.indexOf('process-exit') < task.order.indexOf('done'));
  });

  void it('core/run with args needs no shell; a missing program fails with ENOENT', async () => {
    const ok = await host.run({
      operation: 'run',
      input: { args: ['node', '-e', 'process.stdout.write(process.argv[1])', 'a b $c'] },
    });
    assert.equal(ok.stdout, 'a b $c');
    const missing = await host.run({
      operation: 'run',
      input: { args: ['muster-no-such-program'] },
    });
    assert.equal(missing.result.status, 'failed');
    assert.equal(missing.result.error?.code, 'OPERATION_FAILED');
    assert.match(missing.result.error?.message ?? '', /ENOENT/);
    const viaShell = await host.run({ operation: 'run', input: { command: 'muster-no-such' } });
    assert.equal(viaShell.result.exitCode, 127);
  });

  void it('a non-zero exit fails the task with its exit code', async () => {
    const { result } = await host.run({ operation: 'run', input: { command: 'exit 7' } });
    assert.equal(result.status, 'failed');
    assert.equal(result.exitCode, 7);
    assert.equal(result.error, undefined);
  });

  void it('core/run refuses bad input with INVALID_INPUT and a cwd outside with INVALID_PATH', async () => {
    const both = await host.run({ operation: 'run', input: { command: 'true', args: ['true'] } });
    assert.equal(both.result.error?.code, 'INVALID_INPUT');
    const typo = await host.run({ operation: 'run', input: { cmd: 'true' } });
    assert.equal(typo.result.error?.code, 'INVALID_INPUT');
    const cwd = await host.run({ operation: 'run', input: { command: 'pwd', cwd: '../..' } });
    assert.equal(cwd.result.error?.code, 'INVALID_PATH');
  });

  void it('a timeout kills the whole process group', async () => {
    const msg = host.start({
      operation: 'run',
      input: { command: 'sleep 100 & sleep 100' },
      timeoutMs: 300,
    });
    const task = await host.done(msg.taskId);
    assert.equal(task.result.status, 'timed-out');
    assert.equal(task.result.error?.code, 'TASK_TIMEOUT');
    const [pgid] = task.pids;
    assert.ok(pgid !== undefined);
    assert.deepEqual(task.exitedPids, [pgid]);
    await waitUntil('the group to die', () => !groupAlive(pgid));
  });

  void it('cancel kills the whole process group', async () => {
    const msg = host.start({
      operation: 'run',
      input: { command: 'sleep 100 & sleep 100; echo never' },
    });
    await waitUntil('the process', () => host.record(msg.taskId).pids.length > 0);
    host.send({ t: 'cancel', taskId: msg.taskId });
    const task = await host.done(msg.taskId);
    assert.equal(task.result.status, 'cancelled');
    assert.equal(task.result.error?.code, 'TASK_CANCELLED');
    assert.equal(task.result.signal, 'SIGTERM');
    const [pgid] = task.pids;
    await waitUntil('the group to die', () => !groupAlive(pgid as number));
    assert.equal(task.stdout, '');
  });

  void it('a command that ignores SIGTERM is killed with SIGKILL', async () => {
    const msg = host.start({
      operation: 'run',
      input: { args: ['sh', '-c', 'trap "" TERM; echo armed; while :; do sleep 0.1; done'] },
    });
    await waitUntil('the trap', () => host.record(msg.taskId).stdout.includes('armed'));
    host.send({ t: 'cancel', taskId: msg.taskId });
    const task = await host.done(msg.taskId);
    assert.equal(task.result.status, 'cancelled');
    assert.equal(task.result.signal, 'SIGKILL');
    await waitUntil('the group to die', () => !groupAlive(task.pids[0] as number));
  });

  void it('background children are killed when the command exits', async () => {
    const task = await host.run({ operation: 'run', input: { command: 'sleep 100 & echo $!' } });
    assert.equal(task.result.status, 'succeeded');
    await waitUntil('the group to die', () => !groupAlive(task.pids[0] as number));
  });

  void it('places inputs from the blob store with their modes', async () => {
    const script = putBlob(host.blobDir, '#!/bin/sh\necho script ran\n');
    const data = putBlob(host.blobDir, 'data!');
    const task = await host.run({
      operation: 'run',
      input: { command: './bin/run.sh && cat deep/er/data.txt' },
      inputs: [
        { path: 'bin/run.sh', sha256: script, mode: 0o755 },
        { path: 'deep/er/data.txt', sha256: data, mode: 0o600 },
      ],
    });
    assert.equal(task.result.status, 'succeeded', JSON.stringify(task.result));
    assert.equal(task.stdout, 'script ran\ndata!');
    assert.equal(statSync(join(task.workDir, 'deep/er/data.txt')).mode & 0o777, 0o600);
  });

  void it('refuses unsafe input paths and missing blobs', async () => {
    const sha = putBlob(host.blobDir, 'x');
    for (const path of ['../escape.txt', '/etc/x', 'a//b', 'a\\b', './a']) {
      const { result } = await host.run({
        operation: 'noop',
        inputs: [{ path, sha256: sha, mode: 0o644 }],
      });
      assert.equal(result.status, 'failed', path);
      assert.equal(result.error?.code, 'INVALID_PATH', path);
    }
    const missing = await host.run({
      operation: 'noop',
      inputs: [{ path: 'a.txt', sha256: sha256('not stored'), mode: 0o644 }],
    });
    assert.equal(missing.result.error?.code, 'BLOB_NOT_FOUND');
    assert.ok(!existsSync(join(scratch, 'escape.txt')));
  });

  void it('collects outputs into the blob store with their sha256', async () => {
    const task = await host.run({
      operation: 'run',
      input: {
        command:
          'mkdir -p out/sub && printf hello > out/a.txt && printf bin > out/sub/b.bin && chmod 755 out/sub/b.bin && printf no > other.txt && printf hidden > out/.h',
      },
      outputs: ['out/**', 'nothing/*.matches'],
    });
    assert.equal(task.result.status, 'succeeded', JSON.stringify(task.result));
    assert.deepEqual(task.result.outputs, [
      { path: 'out/a.txt', sha256: sha256('hello'), size: 5, mode: 0o644 },
      { path: 'out/sub/b.bin', sha256: sha256('bin'), size: 3, mode: 0o755 },
    ]);
    for (const out of task.result.outputs ?? []) {
      const blob = join(host.blobDir, out.sha256.slice(0, 2), out.sha256);
      assert.equal(sha256(readFileSync(blob)), out.sha256);
      assert.equal(statSync(blob).mode & 0o777, 0o444);
    }
    assert.deepEqual(readdirSync(join(host.blobDir, '.incoming')), []);
  });

  void it('follows a symlink output inside the work dir, refuses one that leads outside', async () => {
    const inside = await host.run({
      operation: 'run',
      input: { command: 'printf x > real.txt && ln -s real.txt link.txt' },
      outputs: ['*.txt'],
    });
    assert.deepEqual(
      inside.result.outputs?.map((o) => [o.path, o.sha256]),
      [
        ['link.txt', sha256('x')],
        ['real.txt', sha256('x')],
      ],
    );
    const outside = await host.run({
      operation: 'run',
      input: { command: 'ln -s /etc/passwd leak.txt' },
      outputs: ['*.txt'],
    });
    assert.equal(outside.result.status, 'failed');
    assert.equal(outside.result.error?.code, 'OUTPUT_ESCAPES');
    assert.equal(outside.result.outputs, undefined);
  });

  void it('fails unknown extensions and operations', async () => {
    const ext = await host.run({ extension: 'nope', operation: 'noop' });
    assert.equal(ext.result.status, 'failed');
    assert.equal(ext.result.error?.code, 'UNKNOWN_EXTENSION');
    const op = await host.run({ operation: 'nope' });
    assert.equal(op.result.error?.code, 'UNKNOWN_OPERATION');
    const crash = await host.run({ operation: 'crash' });
    assert.equal(crash.result.error?.code, 'UNKNOWN_OPERATION');
    const proto = await host.run({ operation: 'toString' });
    assert.equal(proto.result.error?.code, 'UNKNOWN_OPERATION');
  });

  void it('runs a user extension (ESM) with its context', async () => {
    const task = await host.run({
      extension: 'hello',
      operation: 'greet',
      input: { name: 'world' },
      env: { FOO: 'bar' },
    });
    assert.equal(task.result.status, 'succeeded', JSON.stringify(task.result));
    assert.deepEqual(task.result.value, {
      greeting: 'hello world',
      hasMusterEnv: false,
      foo: 'bar',
    });
    assert.equal(task.log, 'greeting world\n');
    assert.match(task.stdout, /^out:task-\d+$/);
    assert.equal(task.stderr, 'err');
  });

  void it('runs a CommonJS extension', async () => {
    const { result } = await host.run({ extension: 'legacy', operation: 'ping', input: 1 });
    assert.deepEqual(result.value, { pong: 1 });
  });

  void it('maps what an operation throws or returns to the result', async () => {
    const coded = await host.run({ extension: 'hello', operation: 'fail' });
    assert.deepEqual(coded.result.error, { code: 'INVALID_INPUT', message: 'bad input here' });
    const plain = await host.run({ extension: 'hello', operation: 'oops' });
    assert.deepEqual(plain.result.error, { code: 'OPERATION_FAILED', message: 'plain failure' });
    const exit3 = await host.run({ extension: 'hello', operation: 'exit3' });
    assert.equal(exit3.result.status, 'failed');
    assert.equal(exit3.result.exitCode, 3);
    assert.deepEqual(exit3.result.value, { exitCode: 3, signal: null, note: 'x' });
    const notJson = await host.run({ extension: 'hello', operation: 'notJson' });
    assert.equal(notJson.result.error?.code, 'OPERATION_FAILED');
  });

  void it('cancels an operation that ignores its signal after the grace period', async () => {
    const msg = host.start({ extension: 'hello', operation: 'stubborn' });
    host.send({ t: 'cancel', taskId: msg.taskId });
    const task = await host.done(msg.taskId, 20_000);
    assert.equal(task.result.status, 'cancelled');
  });

  void it('runs 50 tasks at once', async () => {
    const msgs = Array.from({ length: 50 }, (_, i) =>
      i % 2 === 0
        ? host.start({ operation: 'run', input: { args: ['sh', '-c', `sleep 0.2; echo ${i}`] } })
        : host.start({ operation: 'sleep', input: { ms: 200 } }),
    );
    const tasks = await Promise.all(msgs.map((m) => host.done(m.taskId, 30_000)));
    tasks.forEach((task, i) => {
      assert.equal(task.result.status, 'succeeded', JSON.stringify(task.result));
      if (i % 2 === 0) assert.equal(task.stdout, `${i}\n`);
    });
  });

  void it('core/files.put writes files and files.list lists them', async () => {
    const put = await host.run({
      operation: 'files.put',
      input: {
        files: [
          { path: 'a/b.txt', content: 'héllo' },
          { path: 'bin/x', base64: Buffer.from('#!/bin/sh\n').toString('base64'), mode: 0o755 },
        ],
      },
      outputs: ['**'],
    });
    assert.equal(put.result.status, 'succeeded', JSON.stringify(put.result));
    assert.deepEqual(
      put.result.outputs?.map((o) => [o.path, o.sha256, o.mode]),
      [
        ['a/b.txt', sha256('héllo'), 0o644],
        ['bin/x', sha256('#!/bin/sh\n'), 0o755],
      ],
    );
    const list = await host.run({ operation: 'files.list', workDir: put.workDir });
    assert.deepEqual(list.result.value, ['a/b.txt', 'bin/x']);
    const bad = await host.run({
      operation: 'files.put',
      input: { files: [{ path: '../x', content: '' }] },
    });
    assert.equal(bad.result.error?.code, 'INVALID_PATH');
  });
});

void describe('host process lifecycle', () => {
  void it('a broken extension stops the host with a fatal message naming it', async () => {
    const cases: Record<string, ExtensionFiles> = {
      badname: { 'muster-extension.json': '{"name":"Bad Name","version":"1","main":"index.js"}' },
      throws: {
        'muster-extension.json': '{"name":"throws","version":"1","main":"index.js"}',
        'index.js': 'throw new Error("boom at import");',
      },
      noops: {
        'muster-extension.json': '{"name":"noops","version":"1","main":"index.js"}',
        'index.js': 'export const nothing = 1;',
      },
    };
    for (const [folder, files] of Object.entries(cases)) {
      const broken = HostProcess.start({ [folder]: files });
      const exit = await broken.exited();
      assert.equal(exit.code, 1, folder);
      const fatal = broken.find('fatal');
      assert.equal(fatal?.code, 'HOST_START_FAILED', folder);
      assert.ok(fatal?.message.includes(folder), `${folder}: ${fatal?.message}`);
      assert.equal(broken.find('ready'), undefined);
    }
  });

  void it('core/crash exits the host when test hooks are on', async () => {
    const crashy = HostProcess.start({}, { MUSTER_HOST_TEST_HOOKS: '1' });
    const ready = await crashy.ready();
    assert.ok(ready.extensions[0]?.operations.includes('crash'));
    crashy.start({ operation: 'crash' });
    assert.equal((await crashy.exited()).code, 70);
  });

  void it('shutdown aborts running tasks, kills their groups and exits 0', async () => {
    const h = HostProcess.start();
    await h.ready();
    const msg = h.start({ operation: 'run', input: { command: 'sleep 100 & sleep 100' } });
    await waitUntil('the process', () => h.record(msg.taskId).pids.length > 0);
    const pgid = h.record(msg.taskId).pids[0] as number;
    h.send({ t: 'shutdown' });
    assert.equal((await h.exited()).code, 0);
    assert.equal(h.record(msg.taskId).result?.status, 'cancelled');
    await waitUntil('the group to die', () => !groupAlive(pgid));
  });

  void it('exits and kills its process groups when the agent goes away', async () => {
    const h = HostProcess.start();
    await h.ready();
    const msg = h.start({ operation: 'run', input: { command: 'sleep 100 & sleep 100' } });
    await waitUntil('the process', () => h.record(msg.taskId).pids.length > 0);
    const pgid = h.record(msg.taskId).pids[0] as number;
    h.child.disconnect();
    await h.exited();
    await waitUntil('the group to die', () => !groupAlive(pgid));
  });
});
