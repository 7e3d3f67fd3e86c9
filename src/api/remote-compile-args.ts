/**
 * The one check of a remote compile's arguments (issue 13), as the shared layer has it: the cc
 * extension's own (src/extensions/cc/remote-args.ts, a leaf the agents run), so the client keeps
 * here what an agent would refuse and the coordinator refuses a job before it is queued. No zod:
 * the client's classification of every compile imports it.
 */
export { refusedCompileArgs, refusedCompileOptions } from '../extensions/cc/remote-args.js';
