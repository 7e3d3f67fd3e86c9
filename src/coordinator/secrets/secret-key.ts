/**
 * The key that encrypts secret values at rest (AES-256-GCM), kept out of the database: 32 random
 * bytes in `<data>/secrets.key` (0600). A primary makes it at its first start; a backup holds its
 * primary's, fetched over their authenticated link (ha/replicator.ts, GET /api/v1/ha/secrets-key),
 * so the rows it replicates — ciphertext only — decrypt once it takes over. The key never travels
 * in a snapshot or the change stream.
 *
 * A sealed value is nonce (12 random bytes, one per value) ‖ ciphertext ‖ tag (16 bytes), with the
 * secret's name as associated data: a value copied under another name does not open. Beside it the
 * row keeps the key's id (a hash of the key), so a value sealed under another key is refused with
 * SECRET_UNREADABLE naming that, not as a bare authentication failure.
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeAtomic } from '../../common/atomic-file.js';
import { MusterError } from '../../protocol/errors.js';

export const SECRET_KEY_FILE = 'secrets.key';
const KEY_BYTES = 32;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;

/** What a row keeps of a value: the sealed bytes and the id of the key that sealed them. */
export interface SealedValue {
  sealed: Buffer;
  keyId: string;
}

export function keyIdOf(key: Buffer): string {
  return createHash('sha256').update('muster secrets key\0').update(key).digest('hex').slice(0, 16);
}

export class SecretKey {
  private key: Buffer | undefined;

  private constructor(
    private readonly file: string,
    key: Buffer | undefined,
  ) {
    this.key = key;
  }

  /**
   * The data dir's key; `create`: make one when there is none (a primary). A backup opens
   * without creating: it adopts its primary's.
   */
  static async open(dataDir: string, create: boolean): Promise<SecretKey> {
    const file = join(dataDir, SECRET_KEY_FILE);
    let key: Buffer | undefined;
    try {
      key = await readFile(file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    if (key !== undefined && key.length !== KEY_BYTES)
      throw new MusterError(
        'INVALID_CONFIG',
        `${file} is ${key.length} bytes, not a ${KEY_BYTES}-byte key: restore it from a backup of the data dir (the secrets cannot be read without it)`,
      );
    if (key === undefined && create) {
      key = randomBytes(KEY_BYTES);
      await writeAtomic(file, key, 0o600);
    }
    return new SecretKey(file, key);
  }

  /** The key's id (undefined while a backup has not received its primary's). */
  get id(): string | undefined {
    return this.key === undefined ? undefined : keyIdOf(this.key);
  }

  /** The key itself, for the selected backup only (ha/primary-side.ts). */
  exportKey(): Buffer {
    return Buffer.from(this.require());
  }

  /** A backup keeps its primary's key (written only when it differs). Returns whether it did. */
  async adopt(key: Buffer): Promise<boolean> {
    if (key.length !== KEY_BYTES)
      throw new MusterError('INVALID_MESSAGE', `the primary sent a ${key.length}-byte secrets key`);
    if (this.key?.equals(key)) return false;
    await writeAtomic(this.file, key, 0o600);
    this.key = Buffer.from(key);
    return true;
  }

  seal(name: string, value: string): SealedValue {
    const key = this.require();
    const nonce = randomBytes(NONCE_BYTES);
    const cipher = createCipheriv('aes-256-gcm', key, nonce);
    cipher.setAAD(Buffer.from(name, 'utf8'));
    const body = Buffer.concat([cipher.update(value, 'utf8'), cipher.final()]);
    return { sealed: Buffer.concat([nonce, body, cipher.getAuthTag()]), keyId: keyIdOf(key) };
  }

  unseal(name: string, value: SealedValue): string {
    const key = this.key;
    if (key === undefined || value.keyId !== keyIdOf(key))
      throw new MusterError(
        'SECRET_UNREADABLE',
        key === undefined
          ? `secret ${name} cannot be decrypted: this coordinator has no secrets key (a backup receives its primary's while it replicates)`
          : `secret ${name} was encrypted with another key (${value.keyId}, this coordinator has ${keyIdOf(key)}): set it again`,
      );
    if (value.sealed.length < NONCE_BYTES + TAG_BYTES)
      throw new MusterError('SECRET_UNREADABLE', `secret ${name} is damaged: set it again`);
    const nonce = value.sealed.subarray(0, NONCE_BYTES);
    const tag = value.sealed.subarray(value.sealed.length - TAG_BYTES);
    const body = value.sealed.subarray(NONCE_BYTES, value.sealed.length - TAG_BYTES);
    try {
      const decipher = createDecipheriv('aes-256-gcm', key, nonce);
      decipher.setAAD(Buffer.from(name, 'utf8'));
      decipher.setAuthTag(tag);
      return Buffer.concat([decipher.update(body), decipher.final()]).toString('utf8');
    } catch {
      throw new MusterError(
        'SECRET_UNREADABLE',
        `secret ${name} does not decrypt (damaged, or stored under another name): set it again`,
      );
    }
  }

  private require(): Buffer {
    if (this.key === undefined)
      throw new MusterError(
        'SECRET_UNREADABLE',
        "this coordinator has no secrets key (a backup receives its primary's while it replicates)",
      );
    return this.key;
  }
}
