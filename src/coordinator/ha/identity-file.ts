/**
 * A backup's identity, in <data>/ha.json: its name and the secret it registered with, the
 * primary it belongs to, the primary's pinned certificates (see primary-pins.ts), and whether the
 * primary last said it is selected. Written atomically, readable by the owner only.
 */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { writeAtomic } from '../../common/atomic-file.js';

const identitySchema = z.object({
  name: z.string(),
  secret: z.string(),
  primaryUrl: z.string(),
  /** The certificate last seen on the primary (the pin; without it, the next one is pinned). */
  primaryFingerprint: z.string().optional(),
  /**
   * Every certificate the primary last announced it may present: its current one and, while it
   * replaces it, the next one. Accepted as pins too, and trusted as the primary's certificate.
   */
  primaryPins: z
    .array(z.object({ fingerprint: z.string(), certificate: z.string().optional() }))
    .optional(),
  /** Whether the primary last said this backup is the selected one. */
  selected: z.boolean().optional(),
});
export type Identity = z.infer<typeof identitySchema>;

export class IdentityFile {
  private current: Identity | undefined;

  constructor(private readonly dataDir: string) {}

  private get file(): string {
    return join(this.dataDir, 'ha.json');
  }

  /** The identity as loaded and last updated (load() first). */
  get value(): Identity {
    if (this.current === undefined) throw new Error('the HA identity is not loaded yet');
    return this.current;
  }

  /**
   * Reads ha.json, or makes a new identity (a new secret) when there is none or it is not one.
   * Another name or primary than configured is a new registration: the secret stays, the pins
   * (they belong to the old primary) and the selection go.
   */
  async load(name: string, primaryUrl: string): Promise<Identity> {
    try {
      const parsed = identitySchema.safeParse(JSON.parse(await readFile(this.file, 'utf8')));
      if (parsed.success) {
        const saved = parsed.data;
        if (saved.name === name && saved.primaryUrl === primaryUrl) {
          this.current = saved;
          return saved;
        }
        await this.save({ name, secret: saved.secret, primaryUrl });
        return this.value;
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    await this.save({ name, secret: randomBytes(32).toString('base64url'), primaryUrl });
    return this.value;
  }

  /** Changes some fields and writes the file. */
  async update(changes: Partial<Omit<Identity, 'name' | 'secret' | 'primaryUrl'>>): Promise<void> {
    await this.save({ ...this.value, ...changes });
  }

  private async save(identity: Identity): Promise<void> {
    this.current = identity;
    await writeAtomic(this.file, `${JSON.stringify(identity, null, 2)}\n`, 0o600);
  }
}
