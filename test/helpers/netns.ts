/**
 * A network namespace of the test's own for an agent with no inbound route: a veth pair,
 * 10.250.77.1/30 on the root side (the coordinators listen there; the test certificate names
 * it, scripts/run-tests.js) and 10.250.77.2/30 inside, where iptables drops every new incoming
 * connection, so the agent can only dial out. Needs root (CI runs as root). Removed by remove().
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

export const ROOT_SIDE = '10.250.77.1';
export const NS_SIDE = '10.250.77.2';

export interface OutboundOnlyNamespace {
  name: string;
  /** Prefix for a command to run inside: `ip netns exec NAME`. */
  wrapper: string[];
  /** Runs a command inside the namespace. */
  exec(command: string[]): Promise<{ stdout: string; stderr: string }>;
  remove(): Promise<void>;
}

export async function outboundOnlyNamespace(): Promise<OutboundOnlyNamespace> {
  const tag = `${process.pid % 100_000}`;
  const name = `muster-out-${tag}`;
  const outside = `mo${tag}a`;
  const inside = `mo${tag}b`;
  const ip = (...args: string[]) => run('ip', args);
  const inNs = (...command: string[]) => run('ip', ['netns', 'exec', name, ...command]);
  // Left over from a killed run of this pid: gone first.
  await ip('netns', 'del', name).catch(() => undefined);
  await ip('link', 'del', outside).catch(() => undefined);
  await ip('netns', 'add', name);
  const remove = async (): Promise<void> => {
    await ip('link', 'del', outside).catch(() => undefined);
    await ip('netns', 'del', name).catch(() => undefined);
  };
  try {
    await ip('link', 'add', outside, 'type', 'veth', 'peer', 'name', inside);
    await ip('link', 'set', inside, 'netns', name);
    await ip('addr', 'add', `${ROOT_SIDE}/30`, 'dev', outside);
    await ip('link', 'set', outside, 'up');
    await inNs('ip', 'addr', 'add', `${NS_SIDE}/30`, 'dev', inside);
    await inNs('ip', 'link', 'set', inside, 'up');
    await inNs('ip', 'link', 'set', 'lo', 'up');
    // No inbound route: only replies to what the namespace opened come in.
    await inNs('iptables', '-A', 'INPUT', '-i', 'lo', '-j', 'ACCEPT');
    await inNs(
      'iptables',
      '-A',
      'INPUT',
      '-m',
      'conntrack',
      '--ctstate',
      'ESTABLISHED,RELATED',
      '-j',
      'ACCEPT',
    );
    await inNs('iptables', '-P', 'INPUT', 'DROP');
  } catch (err) {
    await remove();
    throw err;
  }
  return {
    name,
    wrapper: ['ip', 'netns', 'exec', name],
    exec: (command) => inNs(...command),
    remove,
  };
}
