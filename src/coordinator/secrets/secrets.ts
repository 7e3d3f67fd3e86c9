/**
 * Secrets as the API and the scheduler use them: set (sealed with the data dir's key before it
 * reaches the store), list (names, who set them, when: never values), delete, check that a plan's
 * names exist, and open the values a task names at its dispatch — the only place a value is in
 * clear on the coordinator, and it goes from there into the task's environment only.
 */
import { MAX_SECRET_VALUE_BYTES, secretNameProblem } from '../../api/secret-names.js';
import { MusterError } from '../../protocol/errors.js';
import type { SecretSummary, SecretsStore } from '../store/secrets.js';
import type { SecretKey } from './secret-key.js';

export class Secrets {
  constructor(
    private readonly store: { readonly secrets: SecretsStore },
    private readonly key: SecretKey,
    private readonly now: () => Date = () => new Date(),
  ) {}

  /** Creates or replaces (in the caller's transaction, if any); whether the name was new. */
  set(name: string, value: string, by: string): boolean {
    const problem = secretNameProblem(name);
    if (problem !== undefined) throw new MusterError('VALIDATION_FAILED', problem);
    const bytes = Buffer.byteLength(value, 'utf8');
    if (bytes === 0)
      throw new MusterError('VALIDATION_FAILED', `secret ${name} has an empty value`);
    if (bytes > MAX_SECRET_VALUE_BYTES)
      throw new MusterError(
        'VALIDATION_FAILED',
        `secret ${name} is ${bytes} bytes; values are at most ${MAX_SECRET_VALUE_BYTES}`,
      );
    if (value.includes('\0'))
      throw new MusterError('VALIDATION_FAILED', `secret ${name} contains a NUL character`);
    const { sealed, keyId } = this.key.seal(name, value);
    return this.store.secrets.put({
      name,
      sealed,
      keyId,
      setBy: by,
      setAt: this.now().toISOString(),
    });
  }

  list(): SecretSummary[] {
    return this.store.secrets.list();
  }

  get(name: string): SecretSummary {
    const row = this.store.secrets.get(name);
    if (row === undefined) throw notFound([name]);
    const { sealed: _sealed, ...summary } = row;
    return summary;
  }

  /** SECRET_NOT_FOUND when there is none. */
  delete(name: string): void {
    if (!this.store.secrets.remove(name)) throw notFound([name]);
  }

  /** SECRET_NOT_FOUND naming every one of `names` that is not set. */
  requireKnown(names: Iterable<string>): void {
    const missing = [...new Set(names)].filter((n) => this.store.secrets.get(n) === undefined);
    if (missing.length > 0) throw notFound(missing);
  }

  /** The values of `names`, for a task's environment (SECRET_NOT_FOUND, SECRET_UNREADABLE). */
  values(names: readonly string[]): Record<string, string> {
    const out: Record<string, string> = {};
    for (const name of names) {
      const row = this.store.secrets.get(name);
      if (row === undefined) throw notFound([name]);
      out[name] = this.key.unseal(name, row);
    }
    return out;
  }
}

function notFound(names: string[]): MusterError {
  const list = names.join(', ');
  return new MusterError(
    'SECRET_NOT_FOUND',
    names.length === 1
      ? `no secret named ${list}: an admin sets it with muster secrets set ${list}`
      : `no secrets named ${list}: an admin sets them with muster secrets set NAME`,
    { secrets: names },
  );
}
