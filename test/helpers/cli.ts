/** Runs the `muster` command as a real subprocess, bounded, for tests. */
import { spawn } from 'node:child_process';
import { cliPath } from './daemon.js';

export const cliEntry = cliPath;

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface CliRun extends Promise<CliResult> {
  /** The process, to send signals. */
  pid: number | undefined;
  kill(signal: NodeJS.Signals): void;
  /** Resolves once stdout or stderr has printed text matching `pattern`. */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<void>;
}

/** Runs the CLI with only the given environment on top of PATH/HOME; killed after timeoutMs. */
export function runCli(
  args: string[],
  options: {
    env?: NodeJS.ProcessEnv;
    cwd?: string;
    input?: string;
    timeoutMs?: number;
    /** The program to run instead of this Node with the bundled CLI (a release's bin/muster). */
    command?: string;
  } = {},
): CliRun {
  const [program, programArgs] = options.command
    ? [options.command, args]
    : [process.execPath, [cliPath, ...args]];
  const child = spawn(program, programArgs, {
    cwd: options.cwd,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...options.env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  const watchers = new Set<() => void>();
  child.stdout.on('data', (d: Buffer) => {
    stdout += d.toString();
    for (const w of watchers) w();
  });
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
    for (const w of watchers) w();
  });
  child.stdin.end(options.input ?? '');
  const timeoutMs = options.timeoutMs ?? 20_000;
  const result = new Promise<CliResult>((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (signal === 'SIGKILL') stderr += `\n[test: killed after ${timeoutMs} ms]`;
      resolve({ code, signal, stdout, stderr });
    });
  });
  const run = result as CliRun;
  run.pid = child.pid;
  run.kill = (signal) => child.kill(signal);
  run.waitFor = (pattern, waitMs = 10_000) =>
    new Promise<void>((resolve, reject) => {
      const check = (): void => {
        if (pattern.test(stdout) || pattern.test(stderr)) {
          watchers.delete(check);
          clearTimeout(timer);
          resolve();
        }
      };
      const timer = setTimeout(() => {
        watchers.delete(check);
        reject(
          new Error(`no ${String(pattern)} in ${waitMs} ms; stdout: ${stdout}\nstderr: ${stderr}`),
        );
      }, waitMs);
      watchers.add(check);
      check();
    });
  return run;
}
