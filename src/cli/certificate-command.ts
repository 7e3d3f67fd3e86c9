/**
 * `muster certificate show|replace`: the TLS certificate the coordinator serves, and replacing it
 * without a restart (checked by the coordinator first; a selected backup accepts the new one
 * before the swap). Scriptable, e.g. after a renewal: muster certificate replace --cert F --key F.
 */
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import type { CertificateView, PlainHttpView } from '../api/views/certificates.js';
import { MusterError } from '../protocol/errors.js';
import { connect } from './api-client.js';
import { formatTimestamp } from '../api/format.js';
import { printJson } from './print-json.js';

async function readPem(file: string, flag: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    throw new MusterError('INVALID_CONFIG', `${flag} ${file}: ${(err as Error).message}`);
  }
}

function describe(view: CertificateView | PlainHttpView): string {
  if (!view.tls) return `${view.message}\n`;
  const names = [...view.subjectAltName.dns, ...view.subjectAltName.ips];
  const daysLeft = Math.floor((Date.parse(view.validTo) - Date.now()) / 86_400_000);
  return [
    `Subject:      ${view.subject.replace(/\n/g, ', ')}`,
    `Names:        ${names.length > 0 ? names.join(', ') : 'none (no subjectAltName)'}`,
    `Issuer:       ${view.selfSigned ? 'self-signed' : view.issuer.replace(/\n/g, ', ')}`,
    `Valid:        ${formatTimestamp(view.validFrom)} to ${formatTimestamp(view.validTo)} (${daysLeft < 0 ? 'expired' : `${daysLeft} days left`})`,
    `Fingerprint:  ${view.fingerprint256}`,
    `Files:        ${view.files.certificate}, ${view.files.key}`,
    '',
  ].join('\n');
}

export function registerCertificateCommand(program: Command): void {
  const certificate = program
    .command('certificate')
    .description("show or replace the coordinator's TLS certificate (no restart needed)");

  certificate
    .command('show')
    .description('the certificate the coordinator serves: names, issuer, validity, fingerprint')
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }) => {
      const view = await (await connect()).certificate();
      if (opts.json) printJson(view);
      else process.stdout.write(describe(view));
    });

  certificate
    .command('replace')
    .description(
      'serve a new certificate and key (admin, on the primary): checked first, then used at once',
    )
    .requiredOption(
      '--cert <file>',
      'the certificate (PEM; the server certificate, then intermediates)',
    )
    .requiredOption('--key <file>', 'its private key (PEM, without a passphrase)')
    .option('--json', 'print the result as JSON: { certificate, backup }')
    .addHelpText(
      'after',
      [
        '',
        'The coordinator checks that the key belongs to the certificate, that it is valid now and',
        'that it covers the host name in the URL you logged in with; then it writes both over its',
        '--tls-cert/--tls-key files (the old pair kept as .previous) and new connections get it.',
        'Clients that do not trust the new certificate must be told to (NODE_EXTRA_CA_CERTS).',
      ].join('\n'),
    )
    .action(async (opts: { cert: string; key: string; json?: boolean }) => {
      const [pem, key] = await Promise.all([
        readPem(opts.cert, '--cert'),
        readPem(opts.key, '--key'),
      ]);
      const result = await (await connect()).replaceCertificate(pem, key);
      if (opts.json) {
        printJson(result);
        return;
      }
      process.stdout.write(
        `Replaced: new connections get this certificate.\n${describe(result.certificate)}`,
      );
      if (result.backup) {
        const line = `Backup ${result.backup.name}: ${result.backup.message}.\n`;
        if (result.backup.confirmed) process.stdout.write(line);
        else process.stderr.write(`warning: ${line}`);
      }
    });
}
