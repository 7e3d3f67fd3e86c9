/**
 * `muster build` having the per-user compile service host its build (build-control.ts): the
 * service is started when nothing answers (as the shim starts it), the build opened on a
 * control connection, and the command's compiles sent to the service with the build's tag. A
 * service that lives across builds keeps its compiled code and its memories (toolchains,
 * header hashes) warm, and this process loads none of the compile path.
 *
 * The command's `MUSTER_CC_SOCKET` is a link to the service's socket in this build's private
 * directory: the shims then write their fallback log there, and the service counts it as this
 * build's at its close.
 */
import { mkdtemp, rm, symlink } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MUSTER_VERSION } from '../../common/version.js';
import { encodeJsonFrame, FrameDecoder } from '../../protocol/framing.js';
import {
  BUILD_ENV,
  parseControlMessage,
  type BuildHost,
  type BuildRequest,
  type ControlMessage,
} from './build-control.js';
import type { BuildCounts } from './build-summary.js';
import { installedLauncherPaths, launchEnvironment } from './launch-env.js';
import { detach } from './serve-detach.js';
import { environToList, SOCKET_NAME, userSocketDir } from './shim-names.js';
import { socketAnswers } from './socket-path.js';

/** How long the service may take to accept a build (it opens the session meanwhile, not before). */
const ACCEPT_WAIT_MS = 10_000;
/** The close waits for the build's uploads (a minute at most) and the coordinator's answer. */
const CLOSE_WAIT_MS = 120_000;
const MAX_CONTROL_FRAME_BYTES = 1024 * 1024;

/** One control connection: messages in order, and its end. */
class ControlClient {
  readonly #socket: Socket;
  readonly #decoder = new FrameDecoder(MAX_CONTROL_FRAME_BYTES);
  readonly #queue: ControlMessage[] = [];
  #wake: (() => void) | null = null;
  #ended = false;
  /** Where `say` lines go (the build's stderr). */
  onSay: ((text: string) => void) | null = null;

  constructor(socket: Socket) {
    this.#socket = socket;
    socket.on('data', (chunk: Buffer) => {
      try {
        for (const frame of this.#decoder.push(chunk)) {
          const message = frame.kind === 'json' ? parseControlMessage(frame.value) : null;
          if (message === null) throw new Error('not a control message');
          if (message.type === 'say' && this.onSay !== null) this.onSay(message.text);
          else this.#queue.push(message);
        }
      } catch {
        socket.destroy();
      }
      this.#notify();
    });
    socket.on('error', () => socket.destroy());
    socket.once('close', () => {
      this.#ended = true;
      this.#notify();
    });
  }

  send(message: object): void {
    this.#socket.write(encodeJsonFrame(message));
  }

  /** The next message other than `say`, or null: the connection ended, or not in time. */
  async next(timeoutMs: number): Promise<ControlMessage | null> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const message = this.#queue.shift();
      if (message !== undefined) return message;
      if (this.#ended || Date.now() >= deadline) return null;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, deadline - Date.now());
        this.#wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }

  close(): void {
    this.#socket.destroy();
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = null;
    wake?.();
  }
}

function connectTo(path: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(path);
    socket.once('connect', () => {
      socket.off('error', reject);
      resolve(socket);
    });
    socket.once('error', reject);
  });
}

function noCounts(): BuildCounts {
  return {
    jobs: 0,
    compiles: 0,
    remote: 0,
    local: 0,
    cacheHits: 0,
    cacheMisses: 0,
    fallbacks: 0,
    errors: 0,
    reruns: 0,
    fallbackReasons: {},
  };
}

/**
 * The per-user service hosting the build; why not (a sentence) when it does not — the build is
 * then hosted in this process.
 */
export async function hostInService(request: BuildRequest): Promise<BuildHost | string> {
  const socket = join(userSocketDir(process.env, process.getuid?.() ?? 0), SOCKET_NAME);
  try {
    if (!(await socketAnswers(socket))) await detach(socket, '10m', undefined, () => undefined);
  } catch (err) {
    return `the compile service did not start: ${err instanceof Error ? err.message : String(err)}`;
  }
  const paths = installedLauncherPaths();
  const dir = await mkdtemp(join(tmpdir(), 'muster-build-'));
  let control: ControlClient | undefined;
  const refused = async (why: string): Promise<string> => {
    control?.close();
    await rm(dir, { recursive: true, force: true });
    return why;
  };
  try {
    control = new ControlClient(await connectTo(socket));
  } catch (err) {
    return refused(`the compile service did not answer: ${(err as Error).message}`);
  }
  control.onSay = request.say;
  control.send({
    type: 'build-open',
    v: 1,
    version: MUSTER_VERSION,
    launcher: paths.launcher,
    command: request.command.join(' ').slice(0, 8192),
    cwd: process.cwd(),
    env: environToList(process.env),
    placement: request.placement,
    noCache: request.noCache,
    dir,
  });
  const answer = await control.next(ACCEPT_WAIT_MS);
  if (answer?.type !== 'build-accepted')
    return refused(
      answer?.type === 'build-refused'
        ? answer.reason
        : 'the compile service did not accept the build',
    );
  const link = join(dir, SOCKET_NAME);
  await symlink(socket, link);
  const env: NodeJS.ProcessEnv = {
    ...launchEnvironment(process.env, paths, link),
    [BUILD_ENV]: answer.tag,
  };
  const open = control;
  return {
    env,
    finish: async (exitCode) => {
      try {
        open.send({ type: 'build-close', exitCode });
        const closed = await open.next(CLOSE_WAIT_MS);
        if (closed?.type === 'build-closed')
          return {
            counts: closed.counts,
            buildId: closed.buildId ?? undefined,
            note: closed.offline ? 'no coordinator' : undefined,
          };
        request.say(
          'muster: the compile service ended before it closed the build: its counts are lost\n',
        );
        return { counts: noCounts(), buildId: undefined, note: 'the compile service was lost' };
      } finally {
        open.close();
        await rm(dir, { recursive: true, force: true });
      }
    },
  };
}
