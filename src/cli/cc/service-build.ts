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
import { appendFile, mkdtemp, readFile, rename, rm, symlink } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MUSTER_VERSION } from '../../common/version.js';
import { encodeJsonFrame, FrameDecoder } from '../../protocol/framing.js';
import {
  BUILD_DIR_PREFIX,
  parseControlMessage,
  type BuildHost,
  type BuildOutcome,
  type BuildRequest,
  type ControlMessage,
} from './build-control.js';
import { hostedNote, type BuildCounts } from './build-summary.js';
import { installedLauncherPaths } from './launch-env.js';
import { detach } from './serve-detach.js';
import {
  environFromList,
  environToList,
  FALLBACK_LOG_NAME,
  fallbackLineReason,
  MAX_SOCKET_PATH_BYTES,
  SOCKET_NAME,
  userSocketDir,
} from './shim-names.js';
import { prepareSocketDir, socketAnswers } from './socket-path.js';

/** How long the service may take to accept a build (it opens the session meanwhile, not before). */
const ACCEPT_WAIT_MS = 10_000;
/** The close waits for the build's uploads (a minute at most) and the coordinator's answer. */
const CLOSE_WAIT_MS = 120_000;
/** The service's answers: `build-accepted` carries the command's whole environment. */
const MAX_CONTROL_FRAME_BYTES = 8 * 1024 * 1024;

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
          // A line too long to show is not worth the build.
          if (message === null && frame.kind === 'json' && isSay(frame.value)) continue;
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

  get ended(): boolean {
    return this.#ended;
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = null;
    wake?.();
  }
}

function isSay(value: unknown): boolean {
  return (
    typeof value === 'object' && value !== null && (value as { type?: unknown }).type === 'say'
  );
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
  const userDir = userSocketDir(process.env, process.getuid?.() ?? 0);
  const socket = join(userDir, SOCKET_NAME);
  try {
    // Ours alone, before anything is sent: in a shared /tmp another user could make the
    // directory and answer on its socket (the build's environment goes to the service).
    await prepareSocketDir(userDir);
    if (!(await socketAnswers(socket))) await detach(socket, '10m', undefined, () => undefined);
  } catch (err) {
    return `the compile service did not start: ${err instanceof Error ? err.message : String(err)}`;
  }
  const dir = await mkdtemp(join(tmpdir(), BUILD_DIR_PREFIX));
  let control: ControlClient | undefined;
  const refused = async (why: string): Promise<string> => {
    control?.close();
    await rm(dir, { recursive: true, force: true });
    return why;
  };
  // The shims log their fallbacks next to the socket they are given: a link in this build's
  // directory makes that log the build's (unless the link's path is too long for a socket).
  const link = join(dir, SOCKET_NAME);
  let given = socket;
  if (Buffer.byteLength(link) <= MAX_SOCKET_PATH_BYTES) {
    try {
      await symlink(socket, link);
      given = link;
    } catch (err) {
      return refused(`could not link the service's socket: ${(err as Error).message}`);
    }
  }
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
    launcher: installedLauncherPaths().launcher,
    command: request.command.join(' ').slice(0, 8192),
    cwd: process.cwd(),
    env: environToList(process.env),
    placement: request.placement,
    noCache: request.noCache,
    dir,
    socket: given,
  });
  const answer = await control.next(ACCEPT_WAIT_MS);
  if (answer?.type !== 'build-accepted')
    return refused(
      answer?.type === 'build-refused'
        ? answer.reason
        : 'the compile service did not accept the build',
    );
  const open = control;
  return {
    env: environFromList(answer.env),
    finish: async (exitCode) => {
      try {
        open.send({ type: 'build-close', exitCode });
        const closed = await open.next(CLOSE_WAIT_MS);
        return await hostedOutcome(
          closed?.type === 'build-closed' ? closed : null,
          { dir, userDir, lost: open.ended },
          request.say,
        );
      } finally {
        open.close();
        await rm(dir, { recursive: true, force: true });
      }
    },
  };
}

/**
 * A hosted build's outcome from the service's `build-closed` (null: none came) and what the
 * shims logged in the build's directory after the service folded it (it closed the build before
 * the command ended, as it stopped; or it was lost). The native front end has the Node CLI
 * finish this way (`muster build-finish`) whenever it cannot print the service's summary.
 */
export async function hostedOutcome(
  closed: Extract<ControlMessage, { type: 'build-closed' }> | null,
  { dir, userDir, lost }: { dir: string; userDir: string; lost: boolean },
  say: (text: string) => void,
): Promise<BuildOutcome> {
  const later = await foldFallbackLog(dir, userDir);
  if (closed !== null)
    return {
      counts: withFallbacks(closed.counts, later),
      buildId: closed.buildId ?? undefined,
      note: hostedNote(closed),
    };
  say(
    lost
      ? 'muster: the compile service ended before it closed the build: its counts are lost\n'
      : `muster: the compile service did not close the build within ${CLOSE_WAIT_MS / 1000} s: its counts are unknown\n`,
  );
  return {
    counts: withFallbacks(noCounts(), later),
    buildId: undefined,
    note: 'the compile service was lost',
  };
}

/** Fallbacks the shims logged in the build's directory, by reason. */
interface Fallbacks {
  readonly total: number;
  readonly reasons: Record<string, number>;
}

function withFallbacks(counts: BuildCounts, more: Fallbacks): BuildCounts {
  const fallbackReasons = { ...counts.fallbackReasons };
  for (const [reason, n] of Object.entries(more.reasons))
    fallbackReasons[reason] = (fallbackReasons[reason] ?? 0) + n;
  return {
    ...counts,
    jobs: counts.jobs + more.total,
    fallbacks: counts.fallbacks + more.total,
    fallbackReasons,
  };
}

/**
 * Counts the lines left in the build's fallback log (`<unix-seconds> <reason>`: the service
 * folds it at the close, so only those written after it closed the build are left) and moves
 * them to the per-user log, which the service counts in the user's stats at its next start.
 */
async function foldFallbackLog(dir: string, userDir: string): Promise<Fallbacks> {
  // Taken first (a service still closing the build may fold it too): counted once.
  const log = join(dir, FALLBACK_LOG_NAME);
  const taken = `${log}.front-end`;
  const text = await rename(log, taken).then(
    () => readFile(taken, 'utf8'),
    () => '', // none
  );
  const lines = text.split('\n').filter((line) => line.trim() !== '');
  const reasons: Record<string, number> = {};
  for (const line of lines) {
    const reason = fallbackLineReason(line);
    reasons[reason] = (reasons[reason] ?? 0) + 1;
  }
  if (lines.length > 0) {
    const userLog = join(userDir, FALLBACK_LOG_NAME);
    // eslint-disable-next-line no-restricted-syntax -- only the user's stats miss them; the summary has them
    await appendFile(userLog, lines.join('\n') + '\n', { mode: 0o600 }).catch(() => undefined);
  }
  return { total: lines.length, reasons };
}
