/**
 * An agent admin's requests to a running agent: list its instances as they are now (connections,
 * tasks), remove an instance, forget the key an instance is bound to, or reset a cluster's lease.
 * Whoever may write the agent's data dir is its admin, so a request is a file
 * in <data>/control (0700): `muster agent instances --unbind KEY` and `muster agent leases --reset
 * CLUSTER` write one, the agent applies it (within a second while it runs, else at its next start)
 * and answers in <id>.done.json, which the command waits for and prints.
 */
import { randomUUID } from 'node:crypto';
import { mkdir, readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { writeAtomic } from '../common/atomic-file.js';
import { MusterError, type ErrorCode } from '../protocol/errors.js';

export const controlRequestSchema = z.discriminatedUnion('action', [
  z.object({ action: z.literal('list-instances') }),
  z.object({ action: z.literal('remove-instance'), key: z.string().min(1).max(300) }),
  z.object({ action: z.literal('unbind-instance'), key: z.string().min(1).max(300) }),
  z.object({ action: z.literal('reset-lease'), cluster: z.string().min(1).max(128) }),
]);
export type ControlRequest = z.infer<typeof controlRequestSchema>;

export interface ControlAnswer {
  ok: boolean;
  message: string;
  /** Why it was refused, when not because the thing named does not exist (NOT_FOUND). */
  code?: ErrorCode;
  /** list-instances: what only the running agent knows, per instance key. */
  instances?: LiveInstance[];
}

export interface LiveInstance {
  key: string;
  /** Open connections of coordinators (a primary and its backup share an instance). */
  connections: number;
  /** Tasks running, and ended ones whose results wait for their coordinator. */
  running: number;
  ended: number;
}

const POLL_MS = 1000;

export function controlDir(dataDir: string): string {
  return join(dataDir, 'control');
}

/** The agent's side: applies each request once, answers it, and removes it. */
export class ControlRequests {
  private timer: NodeJS.Timeout | undefined;
  private busy = false;

  constructor(
    private readonly dataDir: string,
    private readonly apply: (request: ControlRequest) => Promise<ControlAnswer>,
  ) {}

  async start(): Promise<void> {
    await mkdir(controlDir(this.dataDir), { recursive: true, mode: 0o700 });
    await this.poll();
    this.timer = setInterval(() => void this.poll(), POLL_MS);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private async poll(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      const dir = controlDir(this.dataDir);
      const names = await readdir(dir).catch(() => [] as string[]);
      for (const name of names) {
        if (!name.endsWith('.request.json')) continue;
        const file = join(dir, name);
        const answerFile = join(dir, name.replace(/\.request\.json$/, '.done.json'));
        let answer: ControlAnswer;
        try {
          const parsed = controlRequestSchema.safeParse(JSON.parse(await readFile(file, 'utf8')));
          answer = parsed.success
            ? await this.apply(parsed.data)
            : { ok: false, message: 'not a control request this agent understands' };
        } catch (err) {
          answer = {
            ok: false,
            code: err instanceof MusterError ? err.code : 'INTERNAL',
            message: `could not apply: ${(err as Error).message}`,
          };
        }
        await writeAtomic(answerFile, `${JSON.stringify(answer)}\n`, 0o600);
        await rm(file, { force: true });
      }
    } catch {
      // A full disk or a file removed under us: the request stays and is tried at the next poll.
    } finally {
      this.busy = false;
    }
  }
}

/**
 * The command's side: writes a request and waits up to `timeoutMs` for the agent's answer.
 * Undefined when the agent did not answer in time (it is not running): the request stays and is
 * applied at the agent's next start.
 */
export async function sendControlRequest(
  dataDir: string,
  request: ControlRequest,
  timeoutMs: number,
  options: { withdraw?: boolean } = {},
): Promise<ControlAnswer | undefined> {
  const dir = controlDir(dataDir);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const id = randomUUID();
  const requestFile = join(dir, `${id}.request.json`);
  await writeAtomic(requestFile, `${JSON.stringify(request)}\n`, 0o600);
  const answerFile = join(dir, `${id}.done.json`);
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      const answer = JSON.parse(await readFile(answerFile, 'utf8')) as ControlAnswer;
      await rm(answerFile, { force: true });
      return answer;
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
  // A question whose answer is only worth having now is not left for the agent's next start.
  if (options.withdraw) await rm(requestFile, { force: true });
  return undefined;
}
