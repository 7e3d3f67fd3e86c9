/**
 * The native launcher (dist/native/muster-cc, built by `npm run build`) against a fake compile
 * service speaking shim-protocol.ts: every `hello` and `ran` it sends goes through the zod
 * schemas the real service uses, so this is the contract test of both ends. The "real compiler"
 * of the fallbacks is a fake `gcc` script that records its arguments.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  realpathSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, describe, it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import {
  AFTER_RUN_SUFFIX,
  environFromList,
  FALLBACK_LOG_NAME,
  helloSchema,
  ranSchema,
  SHIM_FALLBACK_REASONS,
  SHIM_MAX_CAPTURE_BYTES,
  SHIM_MAX_FRAME_BYTES,
  type ServiceMessage,
  type ShimHello,
  type ShimRan,
} from '../../src/cli/cc/shim-protocol.js';
import { encodeJsonFrame, FrameDecoder } from '../../src/protocol/framing.js';

const shim = fileURLToPath(new URL('../../native/muster-cc', import.meta.url));

/** One connection, seen from the service's end. */
class Conversation {
  private readonly frames: unknown[] = [];
  private wake: (() => void) | undefined;
  private closed = false;
  private failure: Error | undefined;

  constructor(private readonly socket: Socket) {
    const decoder = new FrameDecoder(SHIM_MAX_FRAME_BYTES);
    socket.on('data', (chunk: Buffer) => {
      try {
        for (const frame of decoder.push(chunk)) {
          this.frames.push(frame.kind === 'json' ? frame.value : frame);
        }
      } catch (err) {
        this.failure = err instanceof Error ? err : new Error(String(err));
        socket.destroy();
      }
      this.wake?.();
    });
    socket.on('error', (err) => {
      this.failure ??= err;
    });
    socket.on('close', () => {
      this.closed = true;
      this.wake?.();
    });
  }

  async next(): Promise<unknown> {
    while (this.frames.length === 0) {
      if (this.failure !== undefined) throw this.failure;
      if (this.closed) throw new Error('the shim closed the connection');
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
    return this.frames.shift();
  }

  async hello(): Promise<ShimHello> {
    return helloSchema.parse(await this.next());
  }

  async ran(): Promise<ShimRan> {
    return ranSchema.parse(await this.next());
  }

  send(message: ServiceMessage | Record<string, unknown>): void {
    this.socket.write(encodeJsonFrame(message));
  }

  sendRaw(bytes: Buffer): void {
    this.socket.write(bytes);
  }
}

type Script = (c: Conversation) => Promise<void>;

class FakeService {
  connections = 0;
  readonly hellos: ShimHello[] = [];
  private readonly errors: unknown[] = [];
  private readonly scripts: Promise<void>[] = [];
  private readonly server: Server;

  constructor(script: Script) {
    this.server = createServer((socket) => {
      this.connections++;
      const conversation = new Conversation(socket);
      this.scripts.push(
        script(conversation)
          .catch((err: unknown) => {
            this.errors.push(err);
          })
          .finally(() => socket.end()),
      );
    });
  }

  listen(path: string): Promise<this> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(path, () => resolve(this));
    });
  }

  /** Waits for every conversation, stops listening, and throws what a script threw. */
  async close(): Promise<void> {
    await Promise.all(this.scripts);
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    if (this.errors.length > 0) throw this.errors[0];
  }
}

interface ShimResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: Buffer;
  stderr: Buffer;
}

function run(
  file: string,
  args: readonly string[],
  options: { env: Record<string, string>; cwd?: string; argv0?: string },
): Promise<ShimResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { ...options, stdio: ['ignore', 'pipe', 'pipe'] });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));
    // A guard against a hung shim, not a time limit: the assertions then report what it did.
    const guard = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('error', (err) => {
      clearTimeout(guard);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(guard);
      resolve({ code, signal, stdout: Buffer.concat(stdout), stderr: Buffer.concat(stderr) });
    });
  });
}

/** Runs with no stdio and waits for the exit only (not for pipes a grandchild may hold). */
function exitCode(
  file: string,
  args: readonly string[],
  env: Record<string, string>,
): Promise<number | null> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { env, stdio: 'ignore' });
    const guard = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('error', (err) => {
      clearTimeout(guard);
      reject(err);
    });
    child.on('exit', (code) => {
      clearTimeout(guard);
      resolve(code);
    });
  });
}

const FAKE_GCC = `#!/bin/sh
printf '%s\\n' "$0" "$@" > "$MARKER"
printf '%s' "$PATH" > "$MARKER.path"
echo 'fake gcc ran' >&2
exit 4
`;

interface Sandbox {
  dir: string;
  /** Holds the fake gcc. */
  bin: string;
  sock: string;
  log: string;
  marker: string;
  env: Record<string, string>;
}

const sandboxes: string[] = [];
after(() => {
  for (const dir of sandboxes) rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
});

function sandbox(): Sandbox {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), 'muster-cc-shim-')));
  sandboxes.push(dir);
  const bin = join(dir, 'bin');
  mkdirSync(bin);
  mkdirSync(join(dir, 'svc'));
  writeFileSync(join(bin, 'gcc'), FAKE_GCC, { mode: 0o755 });
  const sock = join(dir, 'svc', 'cc.sock');
  const marker = join(dir, 'gcc-ran');
  return {
    dir,
    bin,
    sock,
    log: join(dir, 'svc', FALLBACK_LOG_NAME),
    marker,
    env: { PATH: `${bin}:/usr/bin:/bin`, MUSTER_CC_SOCKET: sock, MARKER: marker, LC_ALL: 'C' },
  };
}

/** What the fake gcc was run with: its $0, then its arguments. */
function fakeGccRun(sb: Sandbox): string[] | undefined {
  if (!existsSync(sb.marker)) return undefined;
  return readFileSync(sb.marker, 'utf8').split('\n').slice(0, -1);
}

function logReasons(path: string): string[] {
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8')
    .split('\n')
    .slice(0, -1)
    .map((line) => {
      assert.match(line, /^\d+ [a-z0-9-]+$/);
      const reason = line.slice(line.indexOf(' ') + 1);
      const known: readonly string[] = SHIM_FALLBACK_REASONS;
      assert.ok(known.includes(reason.replace(AFTER_RUN_SUFFIX, '')), `${reason} is documented`);
      return reason;
    });
}

function b64(bytes: Buffer | string): string {
  return Buffer.from(bytes).toString('base64');
}

async function withService(sb: Sandbox, script: Script): Promise<FakeService> {
  return new FakeService(script).listen(sb.sock);
}

describe('muster-cc (the native launcher)', () => {
  it('is built as a native executable', () => {
    const head = readFileSync(shim).subarray(0, 4);
    assert.deepEqual(head, Buffer.from([0x7f, 0x45, 0x4c, 0x46]), 'dist/native/muster-cc is ELF');
  });

  it('sends a hello the schema accepts, then becomes the program of `exec`', async () => {
    const sb = sandbox();
    let hello: ShimHello | undefined;
    const service = await withService(sb, async (c) => {
      hello = await c.hello();
      c.send({ type: 'exec', path: '/bin/sh', argv: ['sh', '-c', 'exit 3'] });
    });
    const result = await run(
      '/bin/sh',
      ['-c', 'umask 027 && exec "$@"', 'sh', shim, 'gcc', '-c', 'x.c'],
      {
        env: sb.env,
        cwd: sb.dir,
      },
    );
    await service.close();
    assert.equal(result.code, 3);
    assert.ok(hello);
    assert.deepEqual(hello.argv, [shim, 'gcc', '-c', 'x.c']);
    assert.equal(hello.invokedAs, 'gcc');
    assert.equal(hello.cwd, sb.dir);
    assert.equal(hello.umask, 0o027);
    assert.equal(hello.stderrTty, false);
    // All of environ (the shell in between may add PWD and the like).
    const sent = environFromList(hello.env);
    for (const [name, value] of Object.entries(sb.env)) assert.equal(sent[name], value, name);
    assert.equal(fakeGccRun(sb), undefined);
    assert.deepEqual(logReasons(sb.log), []);
  });

  it('gives `exec` and `run` children only the environment the service names', async () => {
    const sb = sandbox();
    const env = ['FOO=bar', 'SPACED=a b'];
    const service = await withService(sb, async (c) => {
      await c.hello();
      c.send({ type: 'run', path: '/usr/bin/env', argv: ['env'], env, token: 't' });
      await c.ran();
      c.send({ type: 'exit', code: 0, stderr: '' });
    });
    const ran = await run(shim, ['gcc'], { env: sb.env });
    await service.close();
    assert.equal(ran.stdout.toString(), 'FOO=bar\nSPACED=a b\n');

    const service2 = await withService(sb, async (c) => {
      await c.hello();
      c.send({ type: 'exec', path: '/usr/bin/env', argv: ['env'], env: ['ONLY=this'] });
    });
    const execed = await run(shim, ['gcc'], { env: sb.env });
    await service2.close();
    assert.equal(execed.code, 0);
    assert.equal(execed.stdout.toString(), 'ONLY=this\n');
  });

  it('tees a `run` child’s stderr and reports every byte of it in `ran`', async () => {
    const sb = sandbox();
    let ran: ShimRan | undefined;
    const script = "printf 'out\\n'; printf 'a\\000b\\377\\n' >&2; exit 2";
    const service = await withService(sb, async (c) => {
      await c.hello();
      c.send({ type: 'run', path: '/bin/sh', argv: ['sh', '-c', script], token: 'job-1' });
      ran = await c.ran();
      c.send({ type: 'exit', code: 2, stderr: '' });
    });
    const result = await run(shim, ['gcc', '-c', 'x.c'], { env: sb.env });
    await service.close();
    const bytes = Buffer.from([0x61, 0x00, 0x62, 0xff, 0x0a]);
    assert.ok(ran);
    assert.equal(ran.token, 'job-1');
    assert.equal(ran.exitCode, 2);
    assert.equal(ran.signal, null);
    assert.deepEqual(Buffer.from(ran.stderr, 'base64'), bytes);
    assert.ok(ran.usec > 0);
    assert.equal(result.code, 2);
    assert.equal(result.stdout.toString(), 'out\n');
    assert.deepEqual(result.stderr, bytes);
  });

  it('captures a `cpp` child’s stderr without showing it; `exit` prints what it carries', async () => {
    const sb = sandbox();
    let ran: ShimRan | undefined;
    const service = await withService(sb, async (c) => {
      await c.hello();
      c.send({
        type: 'cpp',
        path: '/bin/sh',
        argv: ['sh', '-c', 'echo cpp-warning >&2'],
        token: 'p',
      });
      ran = await c.ran();
      c.send({ type: 'exit', code: 5, stderr: b64(Buffer.from([0x77, 0x00, 0xfe, 0x0a])) });
    });
    const result = await run(shim, ['gcc'], { env: sb.env });
    await service.close();
    assert.ok(ran);
    assert.equal(Buffer.from(ran.stderr, 'base64').toString(), 'cpp-warning\n');
    assert.equal(result.code, 5);
    assert.deepEqual(result.stderr, Buffer.from([0x77, 0x00, 0xfe, 0x0a]));
  });

  it('runs twice in a row (a remote result replaced by a local compile)', async () => {
    const sb = sandbox();
    const rans: ShimRan[] = [];
    const service = await withService(sb, async (c) => {
      await c.hello();
      c.send({
        type: 'run',
        path: '/bin/sh',
        argv: ['sh', '-c', 'echo one >&2; exit 1'],
        token: 'a',
      });
      rans.push(await c.ran());
      c.send({ type: 'run', path: '/bin/sh', argv: ['sh', '-c', 'echo two >&2'], token: 'b' });
      rans.push(await c.ran());
      c.send({ type: 'exit', code: 0, stderr: '' });
    });
    const result = await run(shim, ['gcc'], { env: sb.env });
    await service.close();
    assert.deepEqual(
      rans.map((r) => [r.token, r.exitCode, Buffer.from(r.stderr, 'base64').toString()]),
      [
        ['a', 1, 'one\n'],
        ['b', 0, 'two\n'],
      ],
    );
    assert.equal(result.code, 0);
    assert.equal(result.stderr.toString(), 'one\ntwo\n');
  });

  it('reports a child killed by a signal, then exits with the code the service gives', async () => {
    const sb = sandbox();
    let ran: ShimRan | undefined;
    const service = await withService(sb, async (c) => {
      await c.hello();
      c.send({ type: 'run', path: '/bin/sh', argv: ['sh', '-c', 'kill -TERM $$'], token: 's' });
      ran = await c.ran();
      c.send({ type: 'exit', code: 143, stderr: '' });
    });
    const result = await run(shim, ['gcc'], { env: sb.env });
    await service.close();
    assert.equal(ran?.exitCode, null);
    assert.equal(ran?.signal, 15);
    assert.equal(result.code, 143);
  });

  it('keeps at most SHIM_MAX_CAPTURE_BYTES of stderr, and its `ran` still fits one frame', async () => {
    const sb = sandbox();
    let ran: ShimRan | undefined;
    const bytes = SHIM_MAX_CAPTURE_BYTES + 100_000;
    const service = await withService(sb, async (c) => {
      await c.hello();
      const script = `head -c ${bytes} /dev/zero >&2`;
      c.send({ type: 'run', path: '/bin/sh', argv: ['sh', '-c', script], token: 'big' });
      ran = await c.ran();
      c.send({ type: 'exit', code: 0, stderr: '' });
    });
    const code = await exitCode(shim, ['gcc'], sb.env);
    await service.close();
    assert.equal(code, 0);
    assert.equal(Buffer.from(ran?.stderr ?? '', 'base64').length, SHIM_MAX_CAPTURE_BYTES);
  });

  it('does not wait for a grandchild that keeps the stderr pipe open', async () => {
    const sb = sandbox();
    const fifo = join(sb.dir, 'release');
    const late = join(sb.dir, 'grandchild-done');
    execFileSync('mkfifo', [fifo]);
    let ran: ShimRan | undefined;
    // The background job holds the pipe until the test releases it, then leaves a mark.
    const script = `(read x < '${fifo}'; : > '${late}') & echo done >&2; exit 0`;
    const service = await withService(sb, async (c) => {
      await c.hello();
      c.send({ type: 'run', path: '/bin/sh', argv: ['sh', '-c', script], token: 'g' });
      ran = await c.ran();
      c.send({ type: 'exit', code: 0, stderr: '' });
    });
    // Only the shim's exit is awaited: the grandchild would hold a stderr pipe of the test too.
    const code = await exitCode(shim, ['gcc'], sb.env);
    await service.close();
    assert.equal(existsSync(late), false, 'the shim ended before the grandchild');
    writeFileSync(fifo, 'go\n');
    for (let i = 0; i < 3000 && !existsSync(late); i++) await delay(10);
    assert.ok(existsSync(late), 'the grandchild ended');
    assert.equal(code, 0);
    assert.equal(ran?.exitCode, 0);
    assert.equal(Buffer.from(ran?.stderr ?? '', 'base64').toString(), 'done\n');
  });

  it('reports a child’s real status even when SIGCHLD came in ignored', async () => {
    const sb = sandbox();
    let ran: ShimRan | undefined;
    const service = await withService(sb, async (c) => {
      await c.hello();
      c.send({ type: 'run', path: '/bin/sh', argv: ['sh', '-c', 'exit 9'], token: 'c' });
      ran = await c.ran();
      c.send({ type: 'exit', code: 9, stderr: '' });
    });
    const result = await run('/bin/sh', ['-c', `trap '' CHLD; exec "$0" gcc`, shim], {
      env: sb.env,
    });
    await service.close();
    assert.equal(ran?.exitCode, 9);
    assert.equal(result.code, 9);
  });

  it('decodes escapes and surrogate pairs exactly, and escapes its own strings', async () => {
    const sb = sandbox();
    const text = 'q"uote\\ back\nline\ttab \u0001 é 😀 ✓';
    let hello: ShimHello | undefined;
    const service = await withService(sb, async (c) => {
      hello = await c.hello();
      c.send({
        type: 'exec',
        path: '/bin/sh',
        argv: ['sh', '-c', 'printf %s "$1" >&2', 'sh', text],
      });
    });
    const result = await run(shim, ['gcc', text], { env: { ...sb.env, WEIRD: text } });
    await service.close();
    assert.equal(result.stderr.toString(), text);
    assert.equal(hello?.argv[2], text);
    assert.equal(environFromList(hello?.env ?? [])['WEIRD'], text);
  });

  it('runs the real compiler from PATH when the service closes before answering', async () => {
    const sb = sandbox();
    const service = await withService(sb, async (c) => {
      await c.hello();
    });
    const result = await run(shim, ['gcc', '-c', 'x.c'], { env: sb.env });
    await service.close();
    assert.equal(result.code, 4);
    assert.deepEqual(fakeGccRun(sb), [join(sb.bin, 'gcc'), '-c', 'x.c']);
    assert.equal(result.stderr.toString(), 'fake gcc ran\n');
    assert.deepEqual(logReasons(sb.log), ['eof']);
    assert.equal(statSync(sb.log).mode & 0o777, 0o600);
  });

  it('never compiles again once a `run` child has run: it ends as that child ended', async () => {
    const sb = sandbox();
    const service = await withService(sb, async (c) => {
      await c.hello();
      c.send({ type: 'run', path: '/bin/sh', argv: ['sh', '-c', 'exit 6'], token: 'r' });
      await c.ran();
    });
    const result = await run(shim, ['gcc'], { env: sb.env });
    await service.close();
    assert.equal(result.code, 6);
    assert.equal(fakeGccRun(sb), undefined);
    assert.deepEqual(logReasons(sb.log), ['eof-after-run']);
  });

  it('still compiles when the service goes away after a `cpp` pass', async () => {
    const sb = sandbox();
    const service = await withService(sb, async (c) => {
      await c.hello();
      c.send({ type: 'cpp', path: '/bin/sh', argv: ['sh', '-c', 'exit 0'], token: 'p' });
      await c.ran();
    });
    const result = await run(shim, ['gcc', '-c', 'y.c'], { env: sb.env });
    await service.close();
    assert.equal(result.code, 4);
    assert.deepEqual(fakeGccRun(sb), [join(sb.bin, 'gcc'), '-c', 'y.c']);
    assert.deepEqual(logReasons(sb.log), ['eof']);
  });

  it('falls back on every malformed, oversize or unexpected answer', async () => {
    const frame = (kind: number, body: string | Buffer): Buffer => {
      const bytes = Buffer.from(body);
      const head = Buffer.alloc(5);
      head.writeUInt32BE(bytes.length + 1, 0);
      head.writeUInt8(kind, 4);
      return Buffer.concat([head, bytes]);
    };
    const cases: [string, Buffer, string][] = [
      ['binary frame kind', frame(2, '{}'), 'bad-frame'],
      ['length zero', Buffer.from([0, 0, 0, 0, 1]), 'bad-frame'],
      ['over the limit', Buffer.from([0x04, 0, 0, 1, 1]), 'bad-frame'],
      ['truncated JSON', frame(1, '{"type":"exit",'), 'bad-message'],
      ['trailing bytes', frame(1, '{"type":"exit","code":0,"stderr":""} x'), 'bad-message'],
      ['unknown type', encodeJsonFrame({ type: 'explode' }), 'bad-message'],
      ['missing field', encodeJsonFrame({ type: 'exit', code: 1 }), 'bad-message'],
      ['duplicate key', frame(1, '{"type":"exit","code":0,"code":1,"stderr":""}'), 'bad-message'],
      [
        'foreign field',
        encodeJsonFrame({ type: 'exit', code: 0, stderr: '', path: '/x' }),
        'bad-message',
      ],
      [
        'code out of range',
        encodeJsonFrame({ type: 'exit', code: 256, stderr: '' }),
        'bad-message',
      ],
      ['fractional code', frame(1, '{"type":"exit","code":1.5,"stderr":""}'), 'bad-message'],
      ['bad base64', encodeJsonFrame({ type: 'exit', code: 0, stderr: 'a!==' }), 'bad-message'],
      ['relative path', encodeJsonFrame({ type: 'exec', path: 'sh', argv: ['sh'] }), 'bad-message'],
      ['empty argv', encodeJsonFrame({ type: 'exec', path: '/bin/sh', argv: [] }), 'bad-message'],
      [
        'lone surrogate',
        encodeJsonFrame({ type: 'exec', path: '/\udc00', argv: ['x'] }),
        'bad-message',
      ],
      [
        'NUL in a string',
        encodeJsonFrame({ type: 'exec', path: '/bin/\u0000', argv: ['x'] }),
        'bad-message',
      ],
      ['argv not strings', frame(1, '{"type":"exec","path":"/bin/sh","argv":[1]}'), 'bad-message'],
      [
        'not UTF-8',
        frame(
          1,
          Buffer.concat([
            Buffer.from('{"type":"exit","code":0,"stderr":"'),
            Buffer.from([0xff, 0x22, 0x7d]),
          ]),
        ),
        'bad-message',
      ],
      [
        'exec of nothing',
        encodeJsonFrame({ type: 'exec', path: '/nonexistent/cc', argv: ['cc'] }),
        'exec-failed',
      ],
      [
        'run of nothing',
        encodeJsonFrame({ type: 'run', path: '/nonexistent/cc', argv: ['cc'], token: 't' }),
        'spawn-failed',
      ],
    ];
    const sb = sandbox();
    for (const [name, bytes] of cases) {
      rmSync(sb.marker, { force: true });
      const service = await withService(sb, async (c) => {
        await c.hello();
        c.sendRaw(bytes);
      });
      const result = await run(shim, ['gcc', name], { env: sb.env });
      await service.close();
      assert.equal(result.code, 4, name);
      assert.deepEqual(fakeGccRun(sb), [join(sb.bin, 'gcc'), name], name);
    }
    assert.deepEqual(
      logReasons(sb.log),
      cases.map(([, , reason]) => reason),
    );
  });

  it('masquerades as gcc without ever running itself as the real gcc', async () => {
    const sb = sandbox();
    const masq = join(sb.dir, 'masq');
    mkdirSync(masq);
    symlinkSync(shim, join(masq, 'gcc'));
    let hello: ShimHello | undefined;
    const service = await withService(sb, async (c) => {
      hello = await c.hello();
    });
    const env = { ...sb.env, PATH: `${masq}:${sb.env['PATH'] ?? ''}`, MUSTER_CC_MASQUERADE: masq };
    const result = await run(join(masq, 'gcc'), ['-c', 'x.c'], { env, argv0: 'gcc' });
    await service.close();
    assert.equal(hello?.invokedAs, 'gcc');
    assert.deepEqual(hello?.argv, ['gcc', '-c', 'x.c']);
    assert.equal(result.code, 4);
    assert.deepEqual(fakeGccRun(sb), [join(sb.bin, 'gcc'), '-c', 'x.c']);
    const seenPath = (): string => readFileSync(`${sb.marker}.path`, 'utf8');
    assert.equal(seenPath(), sb.env['PATH'], 'the masquerade dir is out of the compiler’s PATH');

    // Without MUSTER_CC_MASQUERADE (and no service at all), its own realpath is skipped too.
    rmSync(sb.marker);
    const { MUSTER_CC_MASQUERADE: _, ...plain } = env;
    const alone = await run(join(masq, 'gcc'), ['-v'], { env: plain, argv0: 'gcc' });
    assert.equal(alone.code, 4);
    assert.deepEqual(fakeGccRun(sb), [join(sb.bin, 'gcc'), '-v']);
    assert.equal(seenPath(), plain.PATH);
    assert.deepEqual(logReasons(sb.log), ['eof', 'no-service']);
  });

  it('takes the launcher form’s compiler as given, and refuses to run without one', async () => {
    const sb = sandbox();
    const gcc = join(sb.bin, 'gcc');
    const byPath = await run(shim, [gcc, '-O2'], { env: { ...sb.env, PATH: '/usr/bin:/bin' } });
    assert.equal(byPath.code, 4);
    assert.deepEqual(fakeGccRun(sb), [gcc, '-O2']);
    for (const args of [[], ['-c']]) {
      const result = await run(shim, args, { env: sb.env });
      assert.equal(result.code, 2);
      assert.match(result.stderr.toString(), /usage: muster-cc COMPILER/);
    }
  });

  it('does not talk to the service when an argument is not UTF-8', async () => {
    const sb = sandbox();
    const service = await withService(sb, async (c) => {
      await c.hello();
    });
    const result = await run('/bin/sh', ['-c', 'exec "$0" gcc "$(printf "x\\377")"', shim], {
      env: sb.env,
    });
    await service.close();
    assert.equal(service.connections, 0);
    assert.equal(result.code, 4);
    assert.deepEqual(readFileSync(sb.marker).subarray(-3), Buffer.from([0x78, 0xff, 0x0a]));
    assert.deepEqual(logReasons(sb.log), ['not-utf8']);
  });

  it('uses the per-user socket directory only when it is private to the user', async () => {
    const sb = sandbox();
    const runtime = join(sb.dir, 'xdg');
    const userDir = join(runtime, 'muster');
    mkdirSync(userDir, { recursive: true });
    const service = await new FakeService(async (c) => {
      await c.hello();
      c.send({ type: 'exit', code: 0, stderr: '' });
    }).listen(join(userDir, 'cc.sock'));
    const { MUSTER_CC_SOCKET: _, ...rest } = sb.env;
    const env = { ...rest, XDG_RUNTIME_DIR: runtime };

    chmodSync(userDir, 0o755);
    const refused = await run(shim, ['gcc'], { env });
    assert.equal(refused.code, 4, 'fell back');
    assert.equal(service.connections, 0);
    assert.equal(existsSync(join(userDir, FALLBACK_LOG_NAME)), false, 'no log in an unsafe dir');

    chmodSync(userDir, 0o700);
    const used = await run(shim, ['gcc'], { env });
    await service.close();
    assert.equal(used.code, 0);
    assert.equal(service.connections, 1);
  });

  it('starts `muster cc --serve --detach` when nothing answers, and falls back when that fails', async () => {
    const sb = sandbox();
    const pkg = join(sb.dir, 'pkg');
    const shimCopy = join(pkg, 'dist', 'native', 'muster-cc');
    mkdirSync(dirname(shimCopy), { recursive: true });
    mkdirSync(join(pkg, 'bin'));
    copyFileSync(shim, shimCopy);
    chmodSync(shimCopy, 0o755);
    const started = join(sb.dir, 'started');
    const { MUSTER_CC_SOCKET: _, ...rest } = sb.env;
    const runtime = join(sb.dir, 'xdg');
    mkdirSync(runtime);
    const env = { ...rest, XDG_RUNTIME_DIR: runtime, STARTED: started };
    const log = join(runtime, 'muster', FALLBACK_LOG_NAME);
    /** Left by a failed start: compiles do not try again for a while. */
    const startFailed = join(runtime, 'muster', 'cc-start-failed');

    // No bin/muster at all.
    const missing = await run(shimCopy, ['gcc', '-c', 'a.c'], { env });
    assert.equal(missing.code, 4);
    assert.deepEqual(fakeGccRun(sb), [join(sb.bin, 'gcc'), '-c', 'a.c']);
    assert.ok(existsSync(startFailed));
    rmSync(startFailed);

    // A bin/muster that fails (what `muster cc --serve` does before the service exists).
    const starter = (status: number): void =>
      writeFileSync(
        join(pkg, 'bin', 'muster'),
        `#!/bin/sh\nprintf '%s\\n' "$@" >> "$STARTED"\necho noise\necho noise >&2\nexit ${status}\n`,
        { mode: 0o755 },
      );
    starter(1);
    const failed = await run(shimCopy, ['gcc', '-c', 'b.c'], { env });
    assert.equal(failed.code, 4);
    assert.equal(failed.stdout.toString(), '', 'the service gets no stdio of the shim');
    assert.equal(failed.stderr.toString(), 'fake gcc ran\n');
    assert.deepEqual(fakeGccRun(sb), [join(sb.bin, 'gcc'), '-c', 'b.c']);
    // The next compile right after falls back without starting anything.
    const again = await run(shimCopy, ['gcc', '-c', 'b2.c'], { env });
    assert.equal(again.code, 4);
    assert.equal(readFileSync(started, 'utf8'), 'cc\n--serve\n--detach\n');
    rmSync(startFailed);

    // A bin/muster that says it started but no socket appears: the shim waits, then falls back.
    starter(0);
    const silent = await run(shimCopy, ['gcc', '-c', 'c.c'], { env });
    assert.equal(silent.code, 4);
    assert.deepEqual(fakeGccRun(sb), [join(sb.bin, 'gcc'), '-c', 'c.c']);
    rmSync(startFailed);

    // A bin/muster that brings the socket up (a link to a listening fake): the shim uses it.
    const listening = join(sb.dir, 'listening.sock');
    const service = await new FakeService(async (c) => {
      await c.hello();
      c.send({ type: 'exit', code: 0, stderr: b64('served\n') });
    }).listen(listening);
    writeFileSync(
      join(pkg, 'bin', 'muster'),
      `#!/bin/sh\nprintf '%s\\n' "$@" >> "$STARTED"\nmkdir -p -m 700 "$XDG_RUNTIME_DIR/muster"\n` +
        `ln -s '${listening}' "$XDG_RUNTIME_DIR/muster/cc.sock"\n`,
      { mode: 0o755 },
    );
    rmSync(sb.marker);
    const served = await run(shimCopy, ['gcc', '-c', 'd.c'], { env });
    await service.close();
    assert.equal(served.code, 0);
    assert.equal(served.stderr.toString(), 'served\n');
    assert.equal(service.connections, 1);
    assert.equal(fakeGccRun(sb), undefined);

    assert.equal(readFileSync(started, 'utf8'), 'cc\n--serve\n--detach\n'.repeat(3));
    assert.deepEqual(logReasons(log), Array<string>(4).fill('service-unavailable'));
    assert.equal(existsSync(startFailed), false);
    assert.equal(statSync(join(runtime, 'muster')).mode & 0o777, 0o700);
  });

  it('starts the service once when many compiles find nothing answering (make -j)', async () => {
    const sb = sandbox();
    const pkg = join(sb.dir, 'pkg');
    const shimCopy = join(pkg, 'dist', 'native', 'muster-cc');
    mkdirSync(dirname(shimCopy), { recursive: true });
    mkdirSync(join(pkg, 'bin'));
    copyFileSync(shim, shimCopy);
    chmodSync(shimCopy, 0o755);
    const started = join(sb.dir, 'started');
    const { MUSTER_CC_SOCKET: _, ...rest } = sb.env;
    const runtime = join(sb.dir, 'xdg');
    mkdirSync(runtime);
    const env = { ...rest, XDG_RUNTIME_DIR: runtime, STARTED: started };
    const listening = join(sb.dir, 'listening.sock');
    const service = await new FakeService(async (c) => {
      await c.hello();
      c.send({ type: 'exit', code: 0, stderr: b64('served\n') });
    }).listen(listening);
    // A start that takes seconds (a Node start on a loaded machine): slow is not failed — the
    // starter and the others wait for it, and nobody falls back.
    writeFileSync(
      join(pkg, 'bin', 'muster'),
      `#!/bin/sh\nprintf '%s\\n' "$@" >> "$STARTED"\nsleep 3.5\n` +
        `mkdir -p -m 700 "$XDG_RUNTIME_DIR/muster"\n` +
        `ln -s '${listening}' "$XDG_RUNTIME_DIR/muster/cc.sock"\n`,
      { mode: 0o755 },
    );

    const compiles = await Promise.all(
      Array.from({ length: 8 }, (_, i) => run(shimCopy, ['gcc', '-c', `f${i}.c`], { env })),
    );
    await service.close();
    assert.equal(readFileSync(started, 'utf8'), 'cc\n--serve\n--detach\n', 'one start');
    for (const compile of compiles) {
      assert.equal(compile.code, 0);
      assert.equal(compile.stderr.toString(), 'served\n');
    }
    assert.equal(service.connections, 8);
    assert.equal(fakeGccRun(sb), undefined, 'no compile fell back');
    assert.deepEqual(logReasons(join(runtime, 'muster', FALLBACK_LOG_NAME)), []);
  });

  it('does not wait for another starter that failed: falls back at once, starts nothing', async () => {
    const sb = sandbox();
    const pkg = join(sb.dir, 'pkg');
    const shimCopy = join(pkg, 'dist', 'native', 'muster-cc');
    mkdirSync(dirname(shimCopy), { recursive: true });
    mkdirSync(join(pkg, 'bin'));
    copyFileSync(shim, shimCopy);
    chmodSync(shimCopy, 0o755);
    const started = join(sb.dir, 'started');
    const { MUSTER_CC_SOCKET: _, ...rest } = sb.env;
    const runtime = join(sb.dir, 'xdg');
    mkdirSync(runtime);
    const env = { ...rest, XDG_RUNTIME_DIR: runtime, STARTED: started };
    writeFileSync(
      join(pkg, 'bin', 'muster'),
      `#!/bin/sh\nprintf '%s\\n' "$@" >> "$STARTED"\nsleep 0.2\nexit 1\n`,
      { mode: 0o755 },
    );

    const compiles = await Promise.all(
      Array.from({ length: 6 }, (_, i) => run(shimCopy, ['gcc', '-c', `f${i}.c`], { env })),
    );
    assert.equal(readFileSync(started, 'utf8'), 'cc\n--serve\n--detach\n', 'one start');
    for (const compile of compiles) {
      assert.equal(compile.code, 4, 'the real compiler ran');
      assert.equal(compile.stderr.toString(), 'fake gcc ran\n');
    }
    assert.deepEqual(
      logReasons(join(runtime, 'muster', FALLBACK_LOG_NAME)),
      Array<string>(6).fill('service-unavailable'),
    );
    assert.ok(existsSync(join(runtime, 'muster', 'cc-start-failed')));
  });
});
