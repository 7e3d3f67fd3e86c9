import { MusterError } from '../protocol/errors.js';

const units: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/**
 * Parses "500ms", "30s", "10m", "1h", "7d" (and "0"). A number without a unit is refused: it
 * once meant milliseconds here and seconds in a plan, so "30" says nothing certain.
 */
export function parseDuration(text: string, what = 'duration'): number {
  const trimmed = text.trim();
  if (/^\d+(?:\.\d+)?$/.test(trimmed) && Number(trimmed) !== 0) {
    throw new MusterError(
      'INVALID_CONFIG',
      `${what} "${text}" has no unit: write ${trimmed}s, ${trimmed}m or ${trimmed}ms (examples: 500ms, 30s, 10m, 1h, 7d)`,
    );
  }
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(trimmed);
  if (!match) {
    throw new MusterError(
      'INVALID_CONFIG',
      `${what} "${text}" is not a duration (examples: 500ms, 30s, 10m, 1h, 7d)`,
    );
  }
  return Math.round(Number(match[1]) * (units[match[2] ?? 'ms'] ?? 1));
}

/** Parses "HOST:PORT", "[v6]:PORT" or ":PORT" / "PORT" (host defaults). */
export function parseHostPort(
  text: string,
  defaults: { host: string; port: number },
  what = 'address',
): { host: string; port: number } {
  if (/^\d+$/.test(text.trim())) text = `:${text.trim()}`;
  const match = /^(?:\[([^\]]+)\]|([^:]*))?:?(\d+)?$/.exec(text.trim());
  const host = match?.[1] ?? match?.[2] ?? '';
  const port = match?.[3] === undefined ? defaults.port : Number(match[3]);
  if (!match || port > 65535 || (host === '' && match[3] === undefined)) {
    throw new MusterError('INVALID_CONFIG', `${what} "${text}" is not HOST:PORT`);
  }
  return { host: host === '' ? defaults.host : host, port };
}

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** Validates --log-level. */
export function parseLogLevel(text: string | undefined): LogLevel {
  const level = text ?? 'info';
  if (!(LOG_LEVELS as readonly string[]).includes(level)) {
    throw new MusterError('INVALID_CONFIG', `--log-level must be one of ${LOG_LEVELS.join(', ')}`);
  }
  return level as LogLevel;
}
