/**
 * MUSTER_SOAK=1: the long versions of the randomised tests (the fuzz tests' time, ha-cycles'
 * kill/restart cycles). `npm test` runs the short ones, within its time budget; every such test
 * prints its seed (MUSTER_TEST_SEED repeats a run, short or long).
 */
export const SOAK = process.env.MUSTER_SOAK === '1';

/** `short` in `npm test`, `long` with MUSTER_SOAK=1. */
export function soakOr<T>(short: T, long: T): T {
  return SOAK ? long : short;
}
