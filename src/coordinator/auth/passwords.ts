/**
 * Password hashing (scrypt) and API tokens (random, stored as SHA-256).
 *
 * A hash records its own parameters (`scrypt$N$r$p$salt$key`), so raising the cost never locks
 * anyone out: old hashes still verify, and `needsRehash` tells the login to store a new one.
 * scrypt at N=2^17 takes 128 MiB and most of a second on a small machine, on libuv's thread pool,
 * which file I/O shares: at most two derivations run at once and a bounded queue waits, so a
 * flood of logins neither exhausts memory nor stalls the blob store.
 */
import { createHash, randomBytes, scrypt, timingSafeEqual } from 'node:crypto';
import { MusterError } from '../../protocol/errors.js';

const R = 8;
const P = 1;
const KEY_LENGTH = 32;
/** What a stored hash may ask for: a hash with more is refused rather than derived. */
const MAX_LOG2_N = 20;
const MAX_R = 16;
const MAX_P = 4;
const MAX_RUNNING = 2;
const MAX_WAITING = 64;

/** The cost new hashes get; older hashes keep theirs until the user's next login. */
export interface PasswordCost {
  /** log2 of scrypt's N. */
  log2N: number;
}

interface Params {
  n: number;
  r: number;
  p: number;
}

let running = 0;
const waiting: (() => void)[] = [];

/** Runs `work` when one of the MAX_RUNNING slots is free; RATE_LIMITED when too many wait. */
async function limited<T>(work: () => Promise<T>): Promise<T> {
  if (running >= MAX_RUNNING) {
    if (waiting.length >= MAX_WAITING)
      throw new MusterError('RATE_LIMITED', 'too many logins at once; try again in a moment');
    await new Promise<void>((resolve) => waiting.push(resolve));
  } else {
    running++;
  }
  try {
    return await work();
  } finally {
    const next = waiting.shift();
    // The slot passes straight to the next waiter; only when none waits is it given back.
    if (next) next();
    else running--;
  }
}

function derive(password: string, salt: Buffer, { n, r, p }: Params): Promise<Buffer> {
  return limited(
    () =>
      new Promise<Buffer>((resolve, reject) =>
        // scrypt needs 128·N·r bytes; leave room for its small extras.
        scrypt(
          password,
          salt,
          KEY_LENGTH,
          { N: n, r, p, maxmem: 129 * n * r * p + 1024 * 1024 },
          (err, key) => (err ? reject(err) : resolve(key)),
        ),
      ),
  );
}

function paramsOf(cost: PasswordCost): Params {
  return { n: 2 ** cost.log2N, r: R, p: P };
}

export async function hashPassword(password: string, cost: PasswordCost): Promise<string> {
  const salt = randomBytes(16);
  const params = paramsOf(cost);
  const key = await derive(password, salt, params);
  return `scrypt$${params.n}$${params.r}$${params.p}$${salt.toString('base64')}$${key.toString('base64')}`;
}

interface Parsed extends Params {
  salt: Buffer;
  hash: Buffer;
}

function parseHash(stored: string): Parsed | undefined {
  const [scheme, n, r, p, salt, hash] = stored.split('$');
  if (scheme !== 'scrypt' || !n || !r || !p || !salt || !hash) return undefined;
  const params = { n: Number(n), r: Number(r), p: Number(p) };
  const log2N = Math.log2(params.n);
  if (
    !Number.isInteger(log2N) ||
    log2N < 1 ||
    log2N > MAX_LOG2_N ||
    !Number.isInteger(params.r) ||
    params.r < 1 ||
    params.r > MAX_R ||
    !Number.isInteger(params.p) ||
    params.p < 1 ||
    params.p > MAX_P
  )
    return undefined;
  return { ...params, salt: Buffer.from(salt, 'base64'), hash: Buffer.from(hash, 'base64') };
}

export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const parsed = parseHash(stored);
  if (!parsed) return false;
  const actual = await derive(password, parsed.salt, parsed);
  return actual.length === parsed.hash.length && timingSafeEqual(actual, parsed.hash);
}

/**
 * Whether a stored hash is weaker than `cost` asks for (then store a new one). A stronger one is
 * kept: lowering --password-cost never weakens a hash that exists.
 */
export function needsRehash(stored: string, cost: PasswordCost): boolean {
  const parsed = parseHash(stored);
  const want = paramsOf(cost);
  return !parsed || parsed.n < want.n || parsed.r < want.r || parsed.p < want.p;
}

/**
 * Verifies against a hash of a random password with the current cost: a login for a user name
 * that does not exist costs as much as one for a name that does, so its timing tells nothing.
 */
export class DummyPassword {
  private hash: Promise<string> | undefined;

  constructor(private readonly cost: PasswordCost) {
    // Made now, so that not even the first unknown name costs a hash more than a known one.
    // eslint-disable-next-line no-restricted-syntax -- prepare() forgets a failed hash; verify() makes it again and throws
    this.prepare().catch(() => undefined);
  }

  async verify(password: string): Promise<false> {
    await verifyPassword(password, await this.prepare());
    return false;
  }

  private prepare(): Promise<string> {
    if (this.hash === undefined) {
      const hash = hashPassword(generatePassword(), this.cost);
      this.hash = hash;
      hash.catch(() => {
        if (this.hash === hash) this.hash = undefined;
      });
    }
    return this.hash;
  }
}

/** A new bearer token: shown to the user once; only its hash is stored. */
export function newToken(): { token: string; hash: string } {
  const token = `mst_${randomBytes(32).toString('base64url')}`;
  return { token, hash: hashToken(token) };
}

export function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

/**
 * Whether two secrets are equal, in time that does not depend on where they differ (both are
 * hashed first, so their lengths do not show either).
 */
export function sameSecret(a: string, b: string): boolean {
  const digest = (s: string) => createHash('sha256').update(s).digest();
  return timingSafeEqual(digest(a), digest(b));
}

export function generatePassword(): string {
  return randomBytes(18).toString('base64url');
}
