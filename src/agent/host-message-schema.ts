/**
 * What a host process may send its agent, checked before the agent acts on it. The host runs the
 * code a coordinator pushed (and, with task users, as another user): to the agent it is a peer
 * like any other, so a malformed message stops that host, never the agent.
 */
import { z } from 'zod';
import { taskResultSchema } from '../protocol/messages.js';
import type { HostToAgent } from '../protocol/host-messages.js';

const taskId = z.string().min(1).max(200);
const pid = z
  .number()
  .int()
  .min(2)
  .max(2 ** 31 - 1);

export const hostToAgentSchema = z.discriminatedUnion('t', [
  z.object({
    t: z.literal('ready'),
    protocol: z.number().int(),
    runtimeVersion: z.string().max(200),
    extensions: z
      .array(
        z.object({
          name: z.string().max(200),
          version: z.string().max(200),
          operations: z.array(z.string().max(200)).max(10_000),
        }),
      )
      .max(1000),
  }),
  z.object({
    t: z.literal('output'),
    taskId,
    stream: z.enum(['stdout', 'stderr', 'log']),
    data: z.instanceof(Uint8Array),
  }),
  z.object({ t: z.literal('process'), taskId, pid }),
  z.object({ t: z.literal('process-exit'), taskId, pid }),
  z.object({ t: z.literal('done'), taskId, result: taskResultSchema }),
  z.object({ t: z.literal('fatal'), code: z.string().max(200), message: z.string().max(10_000) }),
]);

/** The message, or undefined when it is not one a host may send. */
export function parseHostMessage(message: unknown): HostToAgent | undefined {
  const parsed = hostToAgentSchema.safeParse(message);
  return parsed.success ? parsed.data : undefined;
}
