/**
 * One `muster build`'s build on the coordinator: its compile session, opened while the command
 * starts, and the ports its compiles use (the shared cache, the agents' jobs, the recorder of
 * its jobs), behind one guard: a coordinator that stops answering is left alone by all of them
 * until it (or its backup) answers the guard's probe. Used where the build is hosted: in the
 * `muster build` process, or by the per-user service for it (build-control.ts).
 */
import { availableParallelism, hostname } from 'node:os';
import { readBootId } from '../../common/boot-id.js';
import { compileSessionPath } from '../../api/compile-session-key.js';
import type { CompileSessionView } from '../../api/views/compile.js';
import { connect, type ApiClient } from '../api-client.js';
import { formatPoolHint, poolHint } from './build-summary.js';
import { directKeysOf } from './direct-keys.js';
import { CoordinatorCache, RESULTS_GATHER_MS } from './coordinator-cache.js';
import { CoordinatorGuard } from './coordinator-guard.js';
import { CoordinatorJobs } from './coordinator-jobs.js';
import { coordinatorProbe } from './coordinator-probe.js';
import type { BuildPorts } from './hosted-build.js';
import type { CoordinatorPorts } from './ports.js';
import { SessionRecorder } from './session-recorder.js';

/** A fallback reason for every compile when there is no coordinator (stats, records). */
export const NO_COORDINATOR = 'no-coordinator';
const SESSION_TIMEOUT_MS = 5_000;

export interface BuildSessionRequest {
  /** The command line, as the build shows it. */
  readonly command: string;
  readonly cwd: string;
  /** Whose login, coordinator and certificates the build uses. */
  readonly env: NodeJS.ProcessEnv;
}

/** Its close also stops the guard. */
export type BuildSession = BuildPorts;

interface Session {
  client: ApiClient;
  buildId: number;
  /** What requests name the session by (its key: the build id can change at a failback). */
  key: string;
  capacity: CompileSessionView['capacity'];
}

/** Opens the compile session; why not (a message) when there is no coordinator to open it on. */
async function openSession(
  request: BuildSessionRequest,
  say: (text: string) => void,
): Promise<Session | string> {
  try {
    const client = await connect(request.env, { notify: say });
    const bootId = await readBootId();
    // The command waits for this: a coordinator that does not answer within seconds is none.
    const session = await client.createCompileSession(
      {
        command: request.command.slice(0, 8192),
        cwd: request.cwd,
        host: hostname().slice(0, 255) || 'localhost',
        ...(bootId === undefined ? {} : { bootId }),
      },
      SESSION_TIMEOUT_MS,
    );
    say(formatPoolHint(poolHint(session.capacity, availableParallelism()), session.buildId));
    return {
      client,
      buildId: session.buildId,
      key: compileSessionPath(session),
      capacity: session.capacity,
    };
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
}

/** Starts opening the session; `say` gets the lines the build's stderr shows. */
export function openBuildSession(
  request: BuildSessionRequest,
  say: (text: string) => void,
): BuildSession {
  const opening = openSession(request, say).then((session) => {
    if (typeof session === 'string')
      say(`muster: no coordinator (${session}): every compile runs on this machine\n`);
    return session;
  });
  let guard: CoordinatorGuard | undefined;
  let recorder: SessionRecorder | undefined;
  const ports = opening.then((session): CoordinatorPorts => {
    if (typeof session === 'string') return { offlineReason: NO_COORDINATOR };
    guard = new CoordinatorGuard({
      probe: coordinatorProbe(session.client),
      // Said once each way on the build's stderr: the compiles the pause turns away log nothing.
      onChange: (paused) =>
        say(
          paused
            ? 'muster: the coordinator did not answer: compiles run here until it does\n'
            : `muster: the coordinator answers again (${session.client.url})\n`,
        ),
    });
    recorder = new SessionRecorder(
      session.client,
      { buildId: session.buildId, key: session.key },
      { warn: say },
    );
    const sharedCache = new CoordinatorCache(
      session.client,
      () => session.buildId,
      guard,
      Date.now,
      RESULTS_GATHER_MS,
      directKeysOf(session.client.configuredUrl),
    );
    // An update of the list of the coordinator's keys starts with the build (its first
    // compiles are looked up if the list is too old to trust meanwhile).
    sharedCache.refreshDirects();
    return {
      sharedCache,
      remote: new CoordinatorJobs(
        session.client,
        () =>
          Promise.resolve({
            buildId: session.buildId,
            key: session.key,
            capacity: session.capacity,
          }),
        guard,
      ),
      recorder,
    };
  });
  return {
    ports,
    close: async (exitCode, counts) => {
      const session = await opening;
      await ports;
      guard?.stop();
      if (typeof session === 'string' || recorder === undefined) return { buildId: undefined };
      const summary = {
        jobs: counts.compiles,
        remote: counts.remote,
        local: counts.local,
        cacheHits: counts.cacheHits,
        fallbacks: counts.fallbacks,
      };
      await recorder
        .close(exitCode, summary)
        .catch((err: unknown) =>
          say(
            `muster: could not close build ${session.buildId}: ${err instanceof Error ? err.message : String(err)}\n`,
          ),
        );
      // The id the close answered: a failback may have given the build another one meanwhile.
      return { buildId: recorder.buildId };
    },
  };
}
