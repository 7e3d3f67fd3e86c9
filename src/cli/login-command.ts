/** `muster login URL [--user NAME] [--password-stdin]`: gets a token and saves it. */
import type { Command } from 'commander';
import { ApiClient } from './api-client.js';
import { normaliseUrl, saveCredentials } from './config.js';
import { readPassword } from './password-input.js';

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
      const password = await readPassword(opts.passwordStdin === true);
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
