/**
 * The built-in `core` extension: run commands, write and list files, and a few operations for
 * tests. It is an ordinary extension (see src/host/extensions.ts): this folder is shipped to
 * agents on its own, so it imports only Node built-ins and its own files.
 */
import { setTimeout as sleepFor } from 'node:timers/promises';
import type { Operation, OperationContext } from '../../host/extensions.js';
import { inputObject, invalidInput } from './errors.js';
import { list, put } from './files.js';
import { run } from './run.js';

/** core/noop: returns its input (or null). The benchmark's round trip. */
function noop(input: unknown): Promise<unknown> {
  return Promise.resolve(input ?? null);
}

/** core/sleep: `{ ms }`; waits, stopping early on cancel or timeout. */
async function sleep(input: unknown, ctx: OperationContext): Promise<null> {
  const { ms } = inputObject(input, 'core/sleep', ['ms']);
  if (typeof ms !== 'number' || !Number.isFinite(ms) || ms < 0) {
    throw invalidInput('core/sleep: "ms" must be a number >= 0');
  }
  await sleepFor(ms, null, { signal: ctx.signal });
  return null;
}

/** core/crash: kills the host process (tests prove the agent survives it). Test hooks only. */
function crash(): Promise<never> {
  process.exit(70);
}

const testHooks = process.env.MUSTER_HOST_TEST_HOOKS === '1';

export const operations: Record<string, Operation> = {
  noop,
  run,
  'files.put': put,
  'files.list': list,
  sleep,
  ...(testHooks ? { crash } : {}),
};
