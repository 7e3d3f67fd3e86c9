/**
 * Passwords for the CLI: piped in (`--password-stdin`, for scripts) or typed on the terminal
 * without echo. Never taken as an argument, where it would sit in the shell's history and in ps.
 */
import { MusterError } from '../protocol/errors.js';
import { EXIT_INTERRUPTED } from './exit-codes.js';

/** A non-empty password from stdin or the terminal (`prompt` says which one it asks for). */
export async function readPassword(fromStdin: boolean, prompt = 'Password: '): Promise<string> {
  const password = fromStdin ? await readStdin() : await promptPassword(prompt);
  if (password === '') throw new MusterError('INVALID_CONFIG', 'the password is empty');
  return password;
}

/** All of stdin, without the line ending `echo` or a file adds. */
export async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks)
    .toString('utf8')
    .replace(/\r?\n$/, '');
}

/** Asks on the terminal without echoing what is typed. */
export function promptPassword(prompt: string): Promise<string> {
  const stdin = process.stdin;
  if (!stdin.isTTY) {
    return Promise.reject(
      new MusterError(
        'INVALID_CONFIG',
        'no terminal to ask for the password on: pipe it in with --password-stdin',
      ),
    );
  }
  process.stderr.write(prompt);
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
