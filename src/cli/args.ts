/** Parsing of command-line values; a bad one is INVALID_CONFIG (exit 2) naming the flag. */
import { MusterError } from '../protocol/errors.js';

export function parsePositiveInt(raw: string, what: string): number {
  if (!/^\d+$/.test(raw.trim()) || Number(raw) < 1 || !Number.isSafeInteger(Number(raw))) {
    throw new MusterError('INVALID_CONFIG', `${what} "${raw}" is not a positive whole number`);
  }
  return Number(raw);
}

/** A build id as users type it: 12 or #12. */
export function parseBuildId(raw: string): number {
  return parsePositiveInt(raw.replace(/^#/, ''), 'build id');
}

/** "a, b,,c" → ["a", "b", "c"]. */
export function parseList(raw: string): string[] {
  return raw
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
}
