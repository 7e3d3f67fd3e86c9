/**
 * `muster login URL [--user NAME] [--password-stdin] [--fingerprint SHA256]`: gets a token and
 * saves it. Before any password is read or sent, an https coordinator's certificate is looked
 * at: one this machine trusts (system roots, NODE_EXTRA_CA_CERTS) is used as it is; any other
 * (a coordinator's self-signed one) only once its SHA-256 fingerprint is confirmed, by the user
 * at the terminal or by --fingerprint, and then pinned with the saved credentials, so that every
 * later command checks it inside the TLS handshake (http-transport.ts).
 */
import { isLoopbackHost } from '../common/addresses.js';
import { createInterface } from 'node:readline/promises';
import type { Command } from 'commander';
import { MusterError } from '../protocol/errors.js';
import { presentedCertificate, type PresentedCertificate } from '../common/pinned-tls.js';
import { parseFingerprint, sameFingerprint } from '../protocol/fingerprint.js';
import { ApiClient, describeCause } from './api-client.js';
import { normaliseUrl, savedPin, saveCredentials } from './config.js';
import { readPassword } from './password-input.js';

interface LoginOptions {
  user: string;
  passwordStdin?: boolean;
  fingerprint?: string;
}

export function registerLoginCommand(program: Command): void {
  program
    .command('login')
    .description('log in to a coordinator and save the token (or set MUSTER_URL and MUSTER_TOKEN)')
    .argument('<url>', "the coordinator's address, e.g. https://ci.example.com:8000")
    .option('--user <name>', 'user name', 'admin')
    .option('--password-stdin', 'read the password from stdin (for scripts)')
    .option(
      '--fingerprint <sha256>',
      "trust the coordinator's certificate if it has this SHA-256 fingerprint (the one it printed at start), and pin it",
    )
    .addHelpText(
      'after',
      [
        '',
        'The token is saved in $XDG_CONFIG_HOME/muster/credentials.json (mode 0600). Scripts can',
        'instead set MUSTER_URL and MUSTER_TOKEN (and MUSTER_FINGERPRINT for a pinned certificate).',
        "A certificate this machine does not trust (a coordinator's self-signed one) is shown with",
        'its fingerprint to confirm at the terminal; without one, pass --fingerprint. The confirmed',
        'fingerprint is saved with the token and checked by every later command.',
      ].join('\n'),
    )
    .action(async (rawUrl: string, opts: LoginOptions) => {
      const url = normaliseUrl(rawUrl);
      const pin = await certificatePin(url, opts);
      const password = await readPassword(opts.passwordStdin === true);
      const view = await new ApiClient({ url, fingerprint: pin }).login(opts.user, password);
      await saveCredentials({
        url,
        token: view.token,
        user: view.user.name,
        expiresAt: view.expiresAt,
        ...(pin === undefined ? {} : { fingerprint: pin }),
      });
      process.stdout.write(
        `Logged in to ${url} as ${view.user.name}${pin === undefined ? '' : ` (certificate pinned: ${pin})`}\n`,
      );
    });
}

/**
 * The fingerprint to pin for `url`, or undefined when the certificate is trusted as it is (or
 * the URL is plain http). Throws, before anything is sent, when it is not confirmed.
 */
async function certificatePin(url: string, opts: LoginOptions): Promise<string | undefined> {
  const given = opts.fingerprint === undefined ? undefined : parseFingerprint(opts.fingerprint);
  if (opts.fingerprint !== undefined && given === undefined) {
    throw new MusterError(
      'INVALID_CONFIG',
      `--fingerprint "${opts.fingerprint}" is not a SHA-256 fingerprint: 64 hex digits, e.g. AB:CD:…:EF`,
    );
  }
  const target = new URL(url);
  if (target.protocol !== 'https:') {
    if (given !== undefined) {
      throw new MusterError(
        'INVALID_CONFIG',
        `--fingerprint needs an https:// URL: ${url} is plain HTTP, which has no certificate`,
      );
    }
    if (!isLoopbackHost(target.hostname)) {
      process.stderr.write(
        `muster: warning: ${url} is plain HTTP: your password and token cross the network readable\n`,
      );
    }
    return undefined;
  }
  let presented: PresentedCertificate;
  try {
    presented = await presentedCertificate({
      host: target.hostname,
      port: Number(target.port || 443),
      timeoutMs: 30_000,
    });
  } catch (err) {
    throw new MusterError(
      'UNREACHABLE',
      `cannot reach the coordinator at ${url}: ${describeCause(err)}`,
      undefined,
      { cause: err },
    );
  }
  if (given !== undefined) {
    if (!sameFingerprint(given, presented.fingerprint)) {
      throw new MusterError(
        'TLS_FINGERPRINT_MISMATCH',
        `${url} presents a certificate with the SHA-256 fingerprint ${presented.fingerprint}, not ${given} as given with --fingerprint: nothing was sent. Check the fingerprint the coordinator printed at start; if they differ, something between you and it may be intercepting the connection`,
        { actual: presented.fingerprint, expected: given },
      );
    }
    return presented.fingerprint;
  }
  // Trusted as it is (a CA's certificate for this name): checked the usual way, nothing pinned.
  if (presented.trusted) return undefined;
  const previous = await savedPin(url);
  if (previous !== undefined && sameFingerprint(previous, presented.fingerprint)) return previous;
  const interactive = opts.passwordStdin !== true && process.stdin.isTTY === true;
  process.stderr.write(describe(url, presented, previous));
  if (!interactive) {
    const why =
      previous === undefined
        ? `the certificate of ${url} is not trusted by this machine (${presented.reason ?? 'unknown issuer'})`
        : `the certificate of ${url} is not the one pinned at your last login (${previous})`;
    throw new MusterError(
      previous === undefined ? 'TLS_UNTRUSTED' : 'TLS_FINGERPRINT_MISMATCH',
      `${why}, and there is no terminal to confirm it on: if ${presented.fingerprint} is the fingerprint the coordinator printed at start, pass --fingerprint ${presented.fingerprint}`,
      { fingerprint: presented.fingerprint },
    );
  }
  if (!(await confirm('Trust this certificate? [y/N] '))) {
    throw new MusterError(
      previous === undefined ? 'TLS_UNTRUSTED' : 'TLS_FINGERPRINT_MISMATCH',
      `not logged in: you did not trust the certificate of ${url}; nothing was sent`,
      { fingerprint: presented.fingerprint },
    );
  }
  return presented.fingerprint;
}

function describe(
  url: string,
  presented: PresentedCertificate,
  previous: string | undefined,
): string {
  const lines =
    previous === undefined
      ? [
          `The certificate of ${url} is not trusted by this machine (${presented.reason ?? 'unknown issuer'}).`,
        ]
      : [
          `WARNING: the certificate of ${url} has changed since your last login.`,
          `  pinned then           ${previous}`,
        ];
  lines.push(
    `  SHA-256 fingerprint   ${presented.fingerprint}`,
    `  subject               ${presented.subject}`,
    ...(presented.names === undefined ? [] : [`  names                 ${presented.names}`]),
    `  valid until           ${presented.validTo}`,
    "Compare the fingerprint with the one the coordinator printed at start (or an admin's Admin › Certificates page).",
    '',
  );
  return `${lines.join('\n')}\n`;
}

async function confirm(question: string): Promise<boolean> {
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    const answer = await rl.question(question);
    return /^y(es)?$/i.test(answer.trim());
  } finally {
    rl.close();
  }
}
