/**
 * One shim's connection to the service: frames in, checked, one at a time.
 *
 *   awaiting-hello ──hello──▶ working ──run/cpp──▶ awaiting-ran ──ran──▶ working … ──exit/exec──▶ done
 *         └──build-open──▶ control ──build-close──▶ closing ──build-closed──▶ done
 *
 * A control connection (build-control.ts) carries a `muster build` front end: the service hosts
 * its build while the connection lasts.
 *
 * The shim never sends two frames without an answer in between, so while the service works the
 * socket is paused (nothing more is read). Anything else — a bad or oversized frame, a message
 * that fails its schema, one out of turn, a `ran` with another token, no hello in time — closes
 * this connection only: the shim then runs the compiler itself. Memory is bounded per
 * connection (the frame limit: smaller for the hello) and across connections (`ByteBudget`).
 */
import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import { encodeJsonFrame, FrameDecoder } from '../../protocol/framing.js';
import type { ShimExchange, ShimProgram } from './job-context.js';
import type { ControlMessage } from './build-control.js';
import {
  SHIM_MAX_FRAME_BYTES,
  shimMessageSchema,
  type BuildClose,
  type BuildOpen,
  type ServiceMessage,
  type ShimHello,
  type ShimRan,
} from './shim-protocol.js';

/** A hello is argv + environ: the kernel caps those at a few MiB, JSON-escaped a few times more. */
export const HELLO_MAX_FRAME_BYTES = 16 * 1024 * 1024;

/** Bytes held in incomplete frames over all connections, and the most allowed. */
export interface ByteBudget {
  used: number;
  readonly max: number;
}

type State = 'awaiting-hello' | 'working' | 'awaiting-ran' | 'control' | 'closing' | 'done';

/** The service's side of a control connection. */
export interface ControlChannel {
  /** Sends a message (nothing once the connection is gone). */
  send(message: ControlMessage): void;
  /** Sends the last message and closes. */
  end(message: ControlMessage): void;
  /** Resolves when the connection is gone, whoever closed it. */
  readonly closed: Promise<void>;
}

/** Hosts the build a control connection opens; returns what to do at its `build-close`. */
export type ControlHandler = (
  open: BuildOpen,
  channel: ControlChannel,
) => (close: BuildClose) => void;

export interface ShimConnectionOptions {
  readonly budget: ByteBudget;
  readonly helloTimeoutMs: number;
  /** Answers the hello; throwing closes the connection. */
  readonly answer: (exchange: ShimExchange) => Promise<ServiceMessage>;
  /** A connection closed for a reason worth a log line (a bad peer). */
  readonly onRefused: (reason: string) => void;
  /** Hosts builds (`build-open`); without it a control connection is refused. */
  readonly control?: ControlHandler;
}

export class ShimConnection {
  readonly closed: Promise<void>;
  #state: State = 'awaiting-hello';
  readonly #socket: Socket;
  readonly #options: ShimConnectionOptions;
  readonly #decoder = new FrameDecoder(HELLO_MAX_FRAME_BYTES);
  /** Bytes of the frame being received, counted in the budget. */
  #inFrame = 0;
  #helloTimer: NodeJS.Timeout | null;
  #waiting: {
    token: string;
    resolve: (ran: ShimRan) => void;
    reject: (err: Error) => void;
  } | null = null;
  /** A control connection's `build-close` handler. */
  #onClose: ((close: BuildClose) => void) | null = null;

  constructor(socket: Socket, options: ShimConnectionOptions) {
    this.#socket = socket;
    this.#options = options;
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
    this.#helloTimer = setTimeout(() => this.#refuse('no hello in time'), options.helloTimeoutMs);
    socket.on('data', (chunk: Buffer) => this.#data(chunk));
    socket.on('error', () => socket.destroy());
    socket.once('close', () => this.#closed());
  }

  get state(): State {
    return this.#state;
  }

  /** A `muster build` front end's connection (it lasts as long as its build). */
  get isControl(): boolean {
    return this.#state === 'control' || this.#state === 'closing';
  }

  /** Closes the connection now (the shim falls back, or exits with its child's status). */
  abort(): void {
    this.#socket.destroy();
  }

  #data(chunk: Buffer): void {
    if (this.#state === 'done') return;
    const budget = this.#options.budget;
    this.#inFrame += chunk.length;
    budget.used += chunk.length;
    if (budget.used > budget.max) {
      this.#refuse('the service holds too many incomplete frames');
      return;
    }
    let frames;
    try {
      frames = this.#decoder.push(chunk);
    } catch (err) {
      this.#refuse(err instanceof Error ? err.message : 'bad frame');
      return;
    }
    if (frames.length === 0) return;
    budget.used -= this.#inFrame;
    this.#inFrame = 0;
    const [frame] = frames;
    if (frames.length > 1 || frame === undefined || frame.kind !== 'json') {
      this.#refuse(frames.length > 1 ? 'frames sent out of turn' : 'not a JSON frame');
      return;
    }
    const parsed = shimMessageSchema.safeParse(frame.value);
    if (!parsed.success) {
      this.#refuse(`a message that fails its schema: ${parsed.error.issues[0]?.message ?? ''}`);
      return;
    }
    const message = parsed.data;
    if (this.#state === 'awaiting-hello' && message.type === 'hello') {
      this.#hello(message);
    } else if (
      this.#state === 'awaiting-hello' &&
      message.type === 'build-open' &&
      this.#options.control !== undefined
    ) {
      this.#control(message, this.#options.control);
    } else if (this.#state === 'control' && message.type === 'build-close') {
      const onClose = this.#onClose;
      this.#onClose = null;
      this.#state = 'closing';
      onClose?.(message);
    } else if (
      this.#state === 'awaiting-ran' &&
      message.type === 'ran' &&
      message.token === this.#waiting?.token
    ) {
      const waiting = this.#waiting;
      this.#waiting = null;
      this.#state = 'working';
      this.#socket.pause();
      waiting.resolve(message);
    } else {
      this.#refuse(`unexpected ${message.type} while ${this.#state}`);
    }
  }

  #hello(hello: ShimHello): void {
    if (this.#helloTimer !== null) clearTimeout(this.#helloTimer);
    this.#helloTimer = null;
    this.#state = 'working';
    this.#socket.pause();
    const exchange: ShimExchange = {
      hello,
      run: (program) => this.#run('run', program),
      cpp: (program) => this.#run('cpp', program),
    };
    this.#options.answer(exchange).then(
      (last) => {
        if (this.#state !== 'working') return;
        this.#state = 'done';
        this.#socket.end(encodeJsonFrame(last));
      },
      (err: unknown) => {
        if (this.#state === 'done') return;
        this.#refuse(err instanceof Error ? err.message : String(err));
      },
    );
  }

  #control(open: BuildOpen, control: ControlHandler): void {
    if (this.#helloTimer !== null) clearTimeout(this.#helloTimer);
    this.#helloTimer = null;
    this.#state = 'control';
    const socket = this.#socket;
    const channel: ControlChannel = {
      send: (message) => {
        if (this.#state !== 'done' && socket.writable) socket.write(encodeJsonFrame(message));
      },
      end: (message) => {
        if (this.#state === 'done') return;
        this.#state = 'done';
        socket.end(encodeJsonFrame(message));
      },
      closed: this.closed,
    };
    this.#onClose = control(open, channel);
  }

  #run(type: 'run' | 'cpp', program: ShimProgram): Promise<ShimRan> {
    if (this.#state !== 'working') {
      return Promise.reject(new Error('the shim is gone'));
    }
    const token = randomBytes(9).toString('base64url');
    return new Promise<ShimRan>((resolve, reject) => {
      this.#waiting = { token, resolve, reject };
      this.#state = 'awaiting-ran';
      this.#decoder.setMaxFrameBytes(SHIM_MAX_FRAME_BYTES);
      this.#socket.write(
        encodeJsonFrame({
          type,
          path: program.path,
          argv: program.argv,
          env: program.env,
          token,
        }),
      );
      this.#socket.resume();
    });
  }

  #refuse(reason: string): void {
    if (this.#state === 'done') return;
    this.#options.onRefused(reason);
    this.#socket.destroy();
  }

  #closed(): void {
    if (this.#helloTimer !== null) clearTimeout(this.#helloTimer);
    this.#helloTimer = null;
    this.#options.budget.used -= this.#inFrame;
    this.#inFrame = 0;
    this.#state = 'done';
    this.#onClose = null;
    const waiting = this.#waiting;
    this.#waiting = null;
    waiting?.reject(new Error('the shim closed the connection'));
  }
}
