/**
 * `muster users list|add|role|password|remove`, and `muster users passwd` for one's own: who may
 * log in to the coordinator (CLI and web UI alike) and with which role. Passwords are piped in
 * with --password-stdin or typed at a prompt, never given as arguments.
 */
import type { Command } from 'commander';
import type { UserView } from '../api/views/users.js';
import { MusterError } from '../protocol/errors.js';
import { connect } from './api-client.js';
import { formatTable, formatTimestamp } from '../api/format.js';
import { printJson } from './print-json.js';
import { readPassword } from './password-input.js';

const ROLES = ['admin', 'viewer'] as const;

function roleOf(value: string): UserView['role'] {
  const role = ROLES.find((r) => r === value);
  if (!role)
    throw new MusterError('INVALID_CONFIG', `role "${value}": give admin or viewer`, {
      roles: ROLES,
    });
  return role;
}

export function registerUsersCommand(program: Command): void {
  const users = program
    .command('users')
    .description('list and manage who may log in, and their roles (admin or viewer)')
    .addHelpText(
      'after',
      [
        '',
        'Admins run builds and change agents, users, settings and extensions; viewers only look.',
        'Users are changed on the primary and work on its backup too. A new password ends every',
        'session and token of that user. The last admin cannot be made a viewer or removed.',
      ].join('\n'),
    );

  users
    .command('list')
    .description('every user with role and creation date (admin)')
    .option('--json', 'print JSON: [ { name, role, createdAt } ]')
    .action(async (opts: { json?: boolean }) => {
      const list = await (await connect()).listUsers();
      if (opts.json) {
        printJson(list);
        return;
      }
      process.stdout.write(
        formatTable(
          ['NAME', 'ROLE', 'CREATED'],
          list.map((u) => [u.name, u.role, formatTimestamp(u.createdAt)]),
        ),
      );
    });

  users
    .command('add')
    .description('add a user (admin); asks for the password, or reads it with --password-stdin')
    .argument('<name>', 'letters, digits, ".", "_", "-"')
    .option('--role <role>', 'admin or viewer', 'viewer')
    .option('--password-stdin', 'read the password from stdin (for scripts)')
    .option('--json', 'print the user as JSON')
    .action(
      async (name: string, opts: { role: string; passwordStdin?: boolean; json?: boolean }) => {
        const role = roleOf(opts.role);
        const password = await readPassword(opts.passwordStdin === true, `Password for ${name}: `);
        const user = await (await connect()).createUser(name, role, password);
        if (opts.json) printJson(user);
        else process.stdout.write(`Added ${user.name} (${user.role}).\n`);
      },
    );

  users
    .command('role')
    .description("change a user's role (admin); it applies to their next request")
    .argument('<name>', 'the user')
    .argument('<role>', 'admin or viewer')
    .option('--json', 'print the user as JSON')
    .action(async (name: string, role: string, opts: { json?: boolean }) => {
      const user = await (await connect()).updateUser(name, { role: roleOf(role) });
      if (opts.json) printJson(user);
      else process.stdout.write(`${user.name} is now ${user.role}.\n`);
    });

  users
    .command('password')
    .description("set a user's password (admin); it ends their sessions and tokens")
    .argument('<name>', 'the user')
    .option('--password-stdin', 'read the new password from stdin (for scripts)')
    .action(async (name: string, opts: { passwordStdin?: boolean }) => {
      const password = await readPassword(
        opts.passwordStdin === true,
        `New password for ${name}: `,
      );
      await (await connect()).updateUser(name, { password });
      process.stdout.write(`${name} has a new password; their sessions and tokens have ended.\n`);
    });

  users
    .command('passwd')
    .description('change your own password (any user); your other sessions and tokens end')
    .option(
      '--password-stdin',
      'read the current and the new password from stdin, one per line (for scripts)',
    )
    .action(async (opts: { passwordStdin?: boolean }) => {
      let current: string;
      let password: string;
      if (opts.passwordStdin) {
        const lines = (await readPassword(true)).split(/\r?\n/);
        if (lines.length !== 2 || !lines[0] || !lines[1])
          throw new MusterError(
            'INVALID_CONFIG',
            'give the current password and the new one on stdin, one per line',
          );
        [current, password] = [lines[0], lines[1]];
      } else {
        current = await readPassword(false, 'Current password: ');
        password = await readPassword(false, 'New password: ');
        if ((await readPassword(false, 'New password again: ')) !== password)
          throw new MusterError('INVALID_CONFIG', 'the two new passwords differ: nothing changed');
      }
      await (await connect()).changePassword(current, password);
      process.stdout.write(
        'Your password is changed; your other sessions and tokens have ended.\n',
      );
    });

  users
    .command('remove')
    .description('remove a user (admin); they are logged out at once')
    .argument('<name>', 'the user')
    .action(async (name: string) => {
      await (await connect()).removeUser(name);
      process.stdout.write(`Removed ${name}.\n`);
    });
}
