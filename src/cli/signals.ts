/** SIGTERM/SIGINT: stop gracefully once; a second signal exits at once. SIGHUP: reload. */
import type { Logger } from 'pino';

/**
 * `forceOnlyBy`: only this signal, sent again during the stop, exits at once (the compile
 * service: a second `muster cc --stop`'s SIGTERM must not cut short the builds it closes).
 */
export function onShutdownSignals(
  log: Logger,
  stop: () => Promise<void>,
  options: { forceOnlyBy?: NodeJS.Signals } = {},
): void {
  let signals = 0;
  const shutdown = (signal: NodeJS.Signals): void => {
    signals++;
    if (signals > 1 && options.forceOnlyBy !== undefined && signal !== options.forceOnlyBy) {
      log.info({ signal }, 'already stopping');
      return;
    }
    if (signals > 1) {
      log.warn({ signal }, 'second signal: exiting now');
      process.exit(130);
    }
    log.info({ signal }, 'shutting down');
    stop()
      .then(() => process.exit(0))
      .catch((err: unknown) => {
        log.error({ err }, 'shutdown failed');
        process.exit(1);
      });
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

/**
 * SIGHUP: `reload` once at a time (a SIGHUP during one runs one more after it). A reload that
 * fails (a config file that no longer checks, a certificate that does not match its key) is
 * logged and changes nothing: the daemon keeps its options.
 */
export function onReloadSignal(log: Logger, reload: () => Promise<void>): void {
  process.off('SIGHUP', ignoreWhileStarting);
  let running = false;
  let again = false;
  const run = (): void => {
    if (running) {
      again = true;
      return;
    }
    running = true;
    log.info({ signal: 'SIGHUP' }, 'reloading the configuration');
    reload()
      .catch((err: unknown) =>
        log.error({ err }, 'reload failed: the options in use are unchanged'),
      )
      .finally(() => {
        running = false;
        if (again) {
          again = false;
          run();
        }
      });
  };
  process.on('SIGHUP', run);
}

/** The log line of a reload: what changed now, what waits for a restart. */
export function reloadMessage(applied: readonly string[], restart: readonly string[]): string {
  const now = applied.length === 0 ? 'nothing to change now' : `now: ${applied.join('; ')}`;
  return restart.length === 0
    ? `configuration reloaded (${now})`
    : `configuration reloaded (${now}); these take a restart: ${restart.join(', ')}`;
}

function ignoreWhileStarting(): void {
  // The options are being read right now: nothing to reload yet.
}

/**
 * Called first thing by a daemon's command: a SIGHUP (`systemctl reload` right after a start)
 * that comes before onReloadSignal is ignored instead of ending the process, SIGHUP's default.
 */
export function holdReloadSignal(): void {
  process.on('SIGHUP', ignoreWhileStarting);
}
