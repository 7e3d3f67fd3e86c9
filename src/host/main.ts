/**
 * The host process: started by the agent with child_process.fork (IPC, serialization 'advanced')
 * for one instance and one host version. It loads the bundle's extensions, says `ready`, runs
 * tasks until `shutdown`, and never outlives the agent: when the IPC channel closes it kills
 * every process group its tasks started and exits.
 *
 * Environment (src/protocol/host-messages.ts): MUSTER_BUNDLE_DIR, MUSTER_BLOB_DIR,
 * MUSTER_HOST_PROTOCOL. MUSTER_HOST_TEST_HOOKS=1 enables test-only operations (core/crash).
 *
 * Only Node built-ins and files of this folder may be imported here: the folder is shipped as is.
 */
import { readFileSync } from 'node:fs';
import type { HostToAgent } from '../protocol/host-messages.js';
import { loadExtensions } from './extensions.js';
import { Host } from './host.js';

const PROTOCOL = 1;
/** After `shutdown`, tasks get this long to finish before the host kills them and exits. */
const SHUTDOWN_GRACE_MS = 2000;

function runtimeVersion(): string {
  try {
    const parsed = JSON.parse(readFileSync(new URL('./version.json', import.meta.url), 'utf8')) as {
      version?: unknown;
    };
    return typeof parsed.version === 'string' ? parsed.version : '0.0.0';
  } catch {
    return '0.0.0';
  }
}

function warn(text: string): void {
  process.stderr.write(`muster host: ${text}\n`);
}

let unsent = 0;
let onDrained: (() => void) | undefined;

function sent(err: Error | null): void {
  if (err !== null) warn(`ipc send failed: ${err.message}`);
  unsent--;
  if (unsent === 0) onDrained?.();
}

function send(msg: HostToAgent): void {
  if (!process.connected) return;
  try {
    unsent++;
    process.send?.(msg, undefined, undefined, sent);
  } catch (err) {
    unsent--;
    warn(`cannot send ${msg.t}: ${String(err)}`);
  }
}

/** Resolves once every message handed to `send` is written to the channel. */
function drained(): Promise<void> {
  if (unsent === 0) return Promise.resolve();
  return new Promise((resolve) => (onDrained = resolve));
}

let host: Host | undefined;
let exiting = false;
const early: unknown[] = [];

function exitNow(code: number): never {
  host?.killAll();
  process.exit(code);
}

async function shutdown(): Promise<void> {
  if (exiting) return;
  exiting = true;
  setTimeout(() => exitNow(0), SHUTDOWN_GRACE_MS).unref();
  await host?.shutdown();
  await drained();
  exitNow(0);
}

function onMessage(msg: unknown): void {
  if ((msg as { t?: unknown } | null)?.t === 'shutdown') void shutdown();
  else if (host !== undefined) host.handle(msg);
  else early.push(msg);
}

function fatal(message: string): void {
  exiting = true;
  warn(message);
  const exit = (): never => process.exit(1);
  setTimeout(exit, 1000).unref();
  if (!process.connected || process.send === undefined) exit();
  try {
    process.send?.({ t: 'fatal', code: 'HOST_START_FAILED', message } satisfies HostToAgent, exit);
  } catch {
    exit();
  }
}

async function main(): Promise<void> {
  if (process.send === undefined) {
    warn('must be started by the agent (child_process.fork with an IPC channel)');
    process.exit(1);
  }
  // A failed send with no callback is emitted here; the disconnect handler deals with the cause.
  process.on('error', (err) => warn(`ipc: ${String(err)}`));
  process.on('disconnect', () => exitNow(0));
  process.on('message', onMessage);
  // One task's stray exception must not take the other tasks down with the host.
  process.on('uncaughtException', (err) => warn(`uncaught exception: ${err.stack ?? err.message}`));
  process.on('unhandledRejection', (reason) => warn(`unhandled rejection: ${String(reason)}`));

  const bundleDir = process.env.MUSTER_BUNDLE_DIR;
  const blobDir = process.env.MUSTER_BLOB_DIR;
  if (bundleDir === undefined || bundleDir === '' || blobDir === undefined || blobDir === '') {
    fatal('MUSTER_BUNDLE_DIR and MUSTER_BLOB_DIR must be set');
    return;
  }
  let extensions;
  try {
    extensions = await loadExtensions(bundleDir);
  } catch (err) {
    fatal(err instanceof Error ? err.message : String(err));
    return;
  }
  if (exiting) return;
  host = new Host({ send, blobDir, env: process.env, extensions, warn });
  send({
    t: 'ready',
    protocol: PROTOCOL,
    runtimeVersion: runtimeVersion(),
    extensions: extensions.map((e) => ({
      name: e.name,
      version: e.version,
      operations: [...e.operations.keys()],
    })),
  });
  for (const msg of early.splice(0)) host.handle(msg);
}

main().catch((err: unknown) => fatal(`host start failed: ${String(err)}`));
