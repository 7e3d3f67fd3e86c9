/**
 * `muster build` hosting its build in its own process (docs/compile.md "Where the compile
 * service runs"): a compile service on a socket in a private directory for the command's life,
 * and the build's session on the coordinator. Used when the per-user service does not host it
 * (`MUSTER_BUILD_SERVICE=in-process`, another version or cache directory, no service).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BuildHost, BuildRequest } from './build-control.js';
import { openBuildSession } from './build-session.js';
import { countsOf } from './build-summary.js';
import { userCacheDir } from './cache-dir.js';
import { installedLauncherPaths, launchEnvironment, prewarmedCompilers } from './launch-env.js';
import { CompileService } from './service.js';
import { stderrLogOnDemand } from './service-log.js';
import { FALLBACK_LOG_NAME, SOCKET_NAME } from './shim-names.js';

export async function hostInProcess(request: BuildRequest): Promise<BuildHost> {
  const { say } = request;
  // The command starts while the session opens: its compiles wait for it (the service holds
  // them), not make's start-up.
  const session = openBuildSession(
    { command: request.command.join(' '), cwd: process.cwd(), env: process.env },
    say,
  );
  const paths = installedLauncherPaths();
  const dir = await mkdtemp(join(tmpdir(), 'muster-build-'));
  const socket = join(dir, SOCKET_NAME);
  const service = new CompileService({
    cacheDir: userCacheDir(process.env),
    masqueradeDir: paths.masquerade,
    shimPath: paths.launcher,
    placement: request.placement,
    noCache: request.noCache,
    // The results go to the coordinator before this build returns (a slow one gets a minute).
    backgroundMs: 60_000,
    log: stderrLogOnDemand(process.env['MUSTER_CC_LOG'] ?? 'warn'),
    coordinator: session.ports,
    prewarm: prewarmedCompilers(process.env),
  });
  let env: NodeJS.ProcessEnv = launchEnvironment(process.env, paths, socket);
  try {
    await service.start(socket);
  } catch (err) {
    // Never break a build: without the service the command runs as it would without Muster.
    say(
      `muster: the compile service could not start (${err instanceof Error ? err.message : String(err)}): running the command without it\n`,
    );
    env = process.env;
  }
  return {
    env,
    finish: async (exitCode) => {
      let shimFallbacks: number;
      try {
        shimFallbacks = await service.stats.foldFallbackLog(join(dir, FALLBACK_LOG_NAME));
      } finally {
        try {
          await service.stop();
        } finally {
          await rm(dir, { recursive: true, force: true });
        }
      }
      const counts = countsOf(service.stats.totals, shimFallbacks);
      const offline = (await session.ports).offlineReason !== undefined;
      const { buildId } = await session.close(exitCode, counts);
      return { counts, buildId, note: offline ? 'no coordinator' : undefined };
    },
  };
}
