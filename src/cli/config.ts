/**
 * Where the CLI's credentials live. MUSTER_URL + MUSTER_TOKEN (+ MUSTER_FINGERPRINT) in the
 * environment win; otherwise `muster login` saved them in <config dir>/credentials.json (mode
 * 0600), the config dir being MUSTER_CONFIG_DIR, else $XDG_CONFIG_HOME/muster, else
 * ~/.config/muster. With them, the SHA-256 fingerprint of the coordinator's certificate when the
 * user pinned it (a certificate this machine does not otherwise trust, e.g. self-signed).
 */
import { mkdir, readFile } from 'node:fs/promises';
import { writeAtomic } from '../common/atomic-file.js';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { MusterError } from '../protocol/errors.js';
import { parseFingerprint } from '../protocol/fingerprint.js';

const credentialsSchema = z.object({
  url: z.string().min(1),
  token: z.string().min(1),
  user: z.string().min(1),
  expiresAt: z.string().optional(),
  /** The pinned certificate of `url` (SHA-256, colon hex), https only. */
  fingerprint: z.string().optional(),
});
export type Credentials = z.infer<typeof credentialsSchema>;

export interface ResolvedCredentials {
  url: string;
  token: string;
  /** Unknown when they come from the environment. */
  user: string | undefined;
  /** The certificate fingerprint pinned for `url`, if any. */
  fingerprint?: string | undefined;
  /** Where they came from, for messages: "environment" or the file's path. */
  source: string;
}

export function configDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.MUSTER_CONFIG_DIR) return env.MUSTER_CONFIG_DIR;
  const base = env.XDG_CONFIG_HOME ? env.XDG_CONFIG_HOME : join(homedir(), '.config');
  return join(base, 'muster');
}

export function credentialsPath(env: NodeJS.ProcessEnv = process.env): string {
  return join(configDir(env), 'credentials.json');
}

/**
 * A coordinator URL as users type it, normalised to scheme://host[:port][/prefix] without a
 * trailing slash or /api/v1. Throws INVALID_CONFIG for anything that is not http(s).
 */
export function normaliseUrl(raw: string): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new MusterError(
      'INVALID_CONFIG',
      `"${raw}" is not a URL: give the coordinator's address, e.g. https://muster.example.com:8000`,
    );
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new MusterError(
      'INVALID_CONFIG',
      `"${raw}" is not an http:// or https:// URL: give the coordinator's address, e.g. http://127.0.0.1:8000`,
    );
  }
  const path = url.pathname.replace(/\/+$/, '').replace(/\/api\/v1$/, '');
  return `${url.protocol}//${url.host}${path}`;
}

/** The credentials to use, or UNAUTHORIZED saying how to log in. */
export async function loadCredentials(
  env: NodeJS.ProcessEnv = process.env,
): Promise<ResolvedCredentials> {
  const envUrl = env.MUSTER_URL;
  const envToken = env.MUSTER_TOKEN;
  if (envUrl && envToken) {
    const url = normaliseUrl(envUrl);
    const fingerprint = checkPin(env.MUSTER_FINGERPRINT || undefined, url, 'MUSTER_FINGERPRINT');
    return {
      url,
      token: envToken,
      user: undefined,
      ...(fingerprint === undefined ? {} : { fingerprint }),
      source: 'environment',
    };
  }
  if (envUrl || envToken) {
    throw new MusterError(
      'INVALID_CONFIG',
      `${envUrl ? 'MUSTER_URL' : 'MUSTER_TOKEN'} is set but ${envUrl ? 'MUSTER_TOKEN' : 'MUSTER_URL'} is not: set both, or neither and use muster login`,
    );
  }
  const path = credentialsPath(env);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new MusterError(
        'UNAUTHORIZED',
        'not logged in: run muster login URL, or set MUSTER_URL and MUSTER_TOKEN',
      );
    }
    throw new MusterError(
      'INVALID_CONFIG',
      `cannot read ${path}: ${(err as Error).message}`,
      { path },
      { cause: err },
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new MusterError(
      'INVALID_CONFIG',
      `${path} is not valid JSON: log in again with muster login URL`,
      { path },
    );
  }
  const parsed = credentialsSchema.safeParse(json);
  if (!parsed.success) {
    const fields = parsed.error.issues.map((i) => i.path.join('.') || '(root)').join(', ');
    throw new MusterError(
      'INVALID_CONFIG',
      `${path} is not a Muster credentials file (bad ${fields}): log in again with muster login URL`,
      { path },
    );
  }
  const url = normaliseUrl(parsed.data.url);
  const fingerprint = checkPin(parsed.data.fingerprint, url, `the fingerprint in ${path}`);
  return {
    url,
    token: parsed.data.token,
    user: parsed.data.user,
    ...(fingerprint === undefined ? {} : { fingerprint }),
    source: path,
  };
}

/** The fingerprint pinned for `url` in the saved credentials, if they are for that URL. */
export async function savedPin(
  url: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<string | undefined> {
  try {
    const json = JSON.parse(await readFile(credentialsPath(env), 'utf8')) as unknown;
    const parsed = credentialsSchema.safeParse(json);
    if (!parsed.success || parsed.data.fingerprint === undefined) return undefined;
    if (normaliseUrl(parsed.data.url) !== url) return undefined;
    return parseFingerprint(parsed.data.fingerprint);
  } catch {
    return undefined;
  }
}

/** A pin is a SHA-256 fingerprint, and only means something for https. */
function checkPin(pin: string | undefined, url: string, what: string): string | undefined {
  if (pin === undefined) return undefined;
  const fingerprint = parseFingerprint(pin);
  if (fingerprint === undefined) {
    throw new MusterError(
      'INVALID_CONFIG',
      `${what} is not a SHA-256 fingerprint (64 hex digits, e.g. AB:CD:…): log in again with muster login URL`,
    );
  }
  if (!url.startsWith('https:')) {
    throw new MusterError(
      'INVALID_CONFIG',
      `${what} is set for ${url}, which is not https://: a certificate pin needs TLS`,
    );
  }
  return fingerprint;
}

/** Saves credentials readable by the user only (dir 0700, file 0600), atomically. */
export async function saveCredentials(
  credentials: Credentials,
  env: NodeJS.ProcessEnv = process.env,
): Promise<string> {
  const dir = configDir(env);
  const path = credentialsPath(env);
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await writeAtomic(path, `${JSON.stringify(credentials, null, 2)}\n`, 0o600);
  } catch (err) {
    throw new MusterError(
      'INVALID_CONFIG',
      `cannot save credentials in ${path}: ${(err as Error).message}`,
      { path },
      { cause: err },
    );
  }
  return path;
}
