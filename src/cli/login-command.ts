/** `muster login URL [--user NAME] [--password-stdin]`: gets a token and saves it. */
import type { Command } from 'commander';
import { MusterError } from '../protocol/errors.js';
import { ApiClient } from './api-client.js';
import { normaliseUrl, saveCredentials } from './config.js';
import { EXIT_INTERRUPTED } from './exit-codes.js';

interface LoginOptions {
  user: string;
  passwordStdin?: boolean;
}

export function registerLoginCommand(program: Command): void {
  program
    .command('login')
    .description('log in to a coordinator and save the token (or set MUSTER_URL and MUSTER_TOKEN)')
    .argument('<url>', "the coordinator's address, e.g. http://127.0.0.1:8000")
    .option('--user <name>', 'user name', 'admin')
    .option('--password-stdin', 'read the password from stdin (for scripts)')
    .addHelpText(
      'after',
      [
        '',
        'The token is saved in $XDG_CONFIG_HOME/muster/credentials.json (mode 0600). Scripts can',
        'instead set MUSTER_URL and MUSTER_TOKEN. A coordinator with a self-signed certificate:',
        'point NODE_EXTRA_CA_CERTS at a PEM file with its certificate (Node reads it at start).',
      ].join('\n'),
    )
    .action(async (rawUrl: string, opts: LoginOptions) => {
      const url = normaliseUrl(rawUrl);
      const password = opts.passwordStdin ? await readStdin() : await promptPassword();
      if (password === '') {
        throw new MusterError('INVALID_CONFIG', 'the password is empty');
      }
      const view = await new ApiClient({ url }).login(opts.user, password);
      await saveCredentials({
        url,
        token: view.token,
        user: view.user.name,
        expiresAt: view.expiresAt,
      });
      process.stdout.write(`Logged in to ${url} as ${view.user.name}\n`);
    });
}

/** All of stdin, without the line ending `echo` or a file adds. */
async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks)
    .toString('utf8')
    .replace(/\r?\n$/, '');
}

/** Asks on the terminal without echoing what is typed. */
function promptPassword(): Promise<string> {
  const stdin = process.stdin;
  if (!stdin.isTTY) {
    return Promise.reject(
      new MusterError(
        'INVALID_CONFIG',
        'no terminal to ask for the password on: pipe it in with --password-stdin',
      ),
    );
  }
  process.stderr.write('Password: ');
  return new Promise((resolve) => {
    let password = '';
    const finish = (): void => {
      stdin.setRawMode(false);
      stdin.pause();
      stdin.off('data', onData);
      process.stderr.write('\n');
    };
    const onData = (data: Buffer): void => {
      for (const char of data.toString('utf8')) {
        switch (char) {
          case '\r':
          case '\n':
          case '\u0004': // Ctrl-D
            finish();
            resolve(password);
            return;
          case '\u0003': // Ctrl-C: raw mode swallows the signal, so act on it here.
            finish();
            process.exit(EXIT_INTERRUPTED);
            return;
          case '\u007f':
          case '\b':
            password = [...password].slice(0, -1).join('');
            break;
          default:
            if (char >= ' ') password += char;
        }
      }
    };
    stdin.setRawMode(true);
    stdin.resume();
    stdin.on('data', onData);
  });
}
