/**
 * What an agent that dials out tells its coordinator about its machine at each connect
 * (src/protocol/outbound.ts): OS, architecture, cores, memory and the compilers on its PATH. The
 * coordinator makes automatic labels of them. Read once at start: asking each compiler for its
 * version costs a process start.
 */
import { execFile } from 'node:child_process';
import { availableParallelism, arch, hostname, platform, totalmem } from 'node:os';
import { agentFactsSchema, type AgentFacts } from '../protocol/outbound.js';
import { MUSTER_VERSION } from '../common/version.js';

const COMPILERS = ['gcc', 'clang'] as const;

export async function readFacts(): Promise<AgentFacts> {
  const compilers = (await Promise.all(COMPILERS.map(compilerLabel))).filter(
    (label): label is string => label !== undefined,
  );
  // Checked as the coordinator checks them: a platform this schema does not know says so here.
  return agentFactsSchema.parse({
    hostname: hostname().slice(0, 253) || 'agent',
    os: platform(),
    arch: arch(),
    cores: availableParallelism(),
    memoryBytes: totalmem(),
    compilers,
    agentVersion: MUSTER_VERSION,
  });
}

/** `gcc-12` for a gcc whose -dumpversion says 12.2.0; undefined when there is none. */
function compilerLabel(driver: string): Promise<string | undefined> {
  return new Promise((resolve) => {
    execFile(driver, ['-dumpversion'], { timeout: 5000 }, (err, stdout) => {
      const major = /^(\d{1,3})\b/.exec(stdout.trim())?.[1];
      resolve(err || major === undefined ? undefined : `${driver}-${major}`);
    });
  });
}
