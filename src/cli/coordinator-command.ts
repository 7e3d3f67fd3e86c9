/** `muster coordinator`: the server with the API, scheduler and state. */
import type { Command } from 'commander';
import { pino } from 'pino';
import {
  compileCoordinatorOptions,
  type CompiledCoordinatorOptions,
  type CoordinatorOptions,
} from '../coordinator/options.js';
import { daemonOptions } from './daemon-config.js';
import { holdReloadSignal, onReloadSignal, onShutdownSignals, reloadMessage } from './signals.js';

export function registerCoordinatorCommand(program: Command): void {
  program
    .command('coordinator')
    .description('run the coordinator: REST API, scheduler, state in SQLite')
    .option(
      '--config <file>',
      'read options from the coordinator: section of this YAML file (flags and MUSTER_* variables win)',
    )
    .option('--listen <host:port>', 'address to listen on', '0.0.0.0:8000')
    .option('--data <dir>', 'data dir: database, blobs, admin password', '.muster/coordinator')
    .option(
      '--tls-cert <file>',
      'serve HTTPS with this certificate (PEM) instead of the self-signed one in <data>/tls',
    )
    .option('--tls-key <file>', "the certificate's private key (PEM)")
    .option('--no-tls', 'plain HTTP (only on trusted networks; the default on a loopback address)')
    .option('--backup-of <url>', 'run as a backup of the primary at this URL')
    .option('--backup-name <name>', "this backup's name in the primary's list (default: host name)")
    .option(
      '--advertise-url <url>',
      'the URL the primary and clients use to reach this backup (default: from --listen)',
    )
    .option(
      '--peer-ca <file>',
      "trust this CA or certificate (PEM) for the other coordinator: a backup's primary, a primary's backups",
    )
    .option('--primary-ca <file>', 'the older name of --peer-ca')
    .option(
      '--failover-timeout <duration>',
      'a backup takes over after the primary is unreachable this long',
      '30s',
    )
    .option('--ha-heartbeat <duration>', 'how often primary and backup check on each other', '1s')
    .option(
      '--deselect-after <duration>',
      'a primary deselects its backup after this long out of touch',
      '60m',
    )
    .option(
      '--join-token <token>',
      'primary: registration needs this token; backup: the token to register with',
    )
    .option(
      '--agent-loss-grace <duration>',
      "how long a lost agent's tasks wait for it before being retried",
      '15s',
    )
    .option(
      '--compile-idle-timeout <duration>',
      'a compile session (muster build) not heard from this long is closed as failed',
      '2m',
    )
    .option('--heartbeat-interval <duration>', 'agent heartbeat interval', '5s')
    .option('--token-ttl <duration>', 'how long a login token stays valid', '30d')
    .option(
      '--request-timeout <duration>',
      "how long a client may take to send a request's head and body (larger bodies from admins get more time)",
      '30s',
    )
    .option(
      '--idle-timeout <duration>',
      'close a connection silent in both directions this long',
      '2m',
    )
    .option(
      '--keep-alive-timeout <duration>',
      "close an idle keep-alive connection after this long (keep it above a load balancer's idle timeout)",
      '72s',
    )
    .option(
      '--password-cost <log2N>',
      'scrypt cost of new password hashes, 14-20 (default 17, or MUSTER_PASSWORD_COST); older hashes are upgraded at login',
    )
    .option(
      '--upload-quota <size>',
      'uploaded blobs no build or extension uses yet may take this much in all',
      '10GiB',
    )
    .option('--upload-quota-per-user <size>', 'the same, per user', '5GiB')
    .option(
      '--blob-retention <duration>',
      'delete blobs that nothing references once they are this old',
      '1h',
    )
    .option(
      '--toolchain-retention <duration>',
      'remove compiler toolchains (muster build) that no compile has used for this long',
      '30d',
    )
    .option('--log-level <level>', 'fatal, error, warn, info, debug, trace or silent', 'info')
    .action(async (_opts: unknown, command: Command) => {
      holdReloadSignal();
      // MUSTER_JOIN_TOKEN, MUSTER_PASSWORD_COST and the rest: daemon-config.ts.
      const options = compileCoordinatorOptions(
        daemonOptions<CoordinatorOptions>(command, 'coordinator', process.env),
      );
      const log = pino({ level: options.logLevel, base: { service: 'muster-coordinator' } });
      // Loaded here, not at the top: every other command starts faster without the server.
      const { Coordinator } = await import('../coordinator/coordinator.js');
      const coordinator = new Coordinator(options, log);
      onShutdownSignals(log, () => coordinator.stop());
      onReloadSignal(log, async () => {
        const next = compileCoordinatorOptions(
          daemonOptions<CoordinatorOptions>(command, 'coordinator', process.env),
        );
        const { applied, restart } = await coordinator.reload(next);
        log.info({ applied, restart }, reloadMessage(applied, restart));
      });
      const { url, generatedAdminPassword, fingerprint, createdCertificate } =
        await coordinator.start();
      if (options.backupOf !== undefined) {
        process.stderr.write(
          `muster coordinator: backup of ${options.backupOf}, registering as "${options.backupName}"; once it is listed there (muster backup list), an admin selects it with: muster backup select ${options.backupName}\n`,
        );
      }
      if (generatedAdminPassword !== undefined) {
        process.stderr.write(
          `muster coordinator: created the user "admin" with the password\n\n    ${generatedAdminPassword}\n\n(saved in ${options.dataDir}/admin-password, mode 0600; set MUSTER_ADMIN_PASSWORD at first start to choose it)\n`,
        );
      }
      process.stderr.write(tlsNote(options, fingerprint, createdCertificate));
      process.stderr.write(`muster coordinator: listening on ${url}\n`);
    });
}

/** What the coordinator serves: its certificate's fingerprint (as the agent prints its own), or why plain HTTP. */
function tlsNote(
  options: CompiledCoordinatorOptions,
  fingerprint: string | null,
  createdCertificate: boolean,
): string {
  if (!options.tls || fingerprint === null) {
    return options.plainHttp === 'loopback'
      ? 'muster coordinator: plain HTTP on a loopback address (only this machine can connect); listen on another address for HTTPS\n'
      : 'muster coordinator: TLS is off (--no-tls): tokens and passwords cross the network readable; use only on a trusted network.\n';
  }
  const origin = !options.tls.generated
    ? ''
    : createdCertificate
      ? `made a self-signed certificate (${options.tls.certFile}); `
      : `serving ${options.tls.certFile}; `;
  const confirm = options.tls.generated
    ? `Users confirm it when they run muster login (or pass --fingerprint).\n`
    : '';
  return `muster coordinator: ${origin}TLS certificate fingerprint (SHA-256):\n\n    ${fingerprint}\n\n${confirm}`;
}
