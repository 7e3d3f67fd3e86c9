/**
 * What the compile service logs with, and the logger `muster build` gives it: pino, made at the
 * first message at or above the level. A `muster build` at its default level (`warn`) mostly
 * logs nothing, and loading pino cost each run ~40 ms of CPU at its start (a per-user service
 * and the daemons use pino directly).
 */
import { createRequire } from 'node:module';
import type * as Pino from 'pino';
import type { Logger } from 'pino';

export type ServiceLog = Pick<Logger, 'debug' | 'info' | 'warn' | 'error'>;

type Method = keyof ServiceLog;

const LEVELS: Readonly<Record<string, number>> = {
  trace: 10,
  debug: 20,
  info: 30,
  warn: 40,
  error: 50,
  fatal: 60,
  silent: Infinity,
};

/** A pino logger to stderr at `level`, made when it first has something to write. */
export function stderrLogOnDemand(level: string): ServiceLog {
  const make = (): Logger => {
    const { pino } = createRequire(import.meta.url)('pino') as typeof Pino;
    return pino({ level }, pino.destination(2));
  };
  const threshold = LEVELS[level];
  // A level pino does not know: made now, so that it refuses it at once as it always did.
  if (threshold === undefined) return make();
  let made: Logger | undefined;
  const method =
    (name: Method) =>
    (...args: unknown[]): void => {
      if ((LEVELS[name] ?? 0) < threshold) return;
      made ??= make();
      Reflect.apply(made[name], made, args);
    };
  return {
    debug: method('debug'),
    info: method('info'),
    warn: method('warn'),
    error: method('error'),
  };
}
