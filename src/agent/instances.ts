/**
 * One instance per connecting coordinator identity: product + (instanceId, or else the
 * connection's source IP). Each instance owns a directory under the temp dir
 * (<temp>/instances/<dirName>) and a record in the data dir (<data>/instances/<dirName>.json)
 * that `muster agent instances` reads.
 */
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { writeAtomic } from '../common/atomic-file.js';
import type { TaskRecord } from './task-record.js';

export const instanceRecordSchema = z.object({
  product: z.string(),
  key: z.string(),
  instanceId: z.string().nullable(),
  sourceIp: z.string().nullable(),
  dirName: z.string(),
  createdAt: z.string(),
  lastSeen: z.string(),
  current: z.string().nullable(),
  /**
   * The public key (SPKI, base64) of the coordinator this instance is bound to: the first that
   * claimed it. Null for instances keyed by source IP, and for records from before binding (the
   * next claim binds them).
   */
  publicKey: z.string().nullable().default(null),
  /**
   * The source address of the last connection, and when it was made (whatever the instance is
   * keyed by). Null in records from before they were kept.
   */
  lastAddress: z.string().nullable().default(null),
  lastConnected: z.string().nullable().default(null),
  /**
   * The system user this instance's tasks run as (task-users.ts), created by the agent on the
   * first task it ran as root. Null when tasks run as the agent's own user, and in older records.
   */
  taskUser: z
    .object({ name: z.string(), uid: z.number().int(), gid: z.number().int() })
    .nullable()
    .default(null),
  versions: z.array(
    z.object({ versionId: z.string(), label: z.string().nullable(), syncedAt: z.string() }),
  ),
});
export type InstanceRecord = z.infer<typeof instanceRecordSchema>;

/** A claim for an instance bound to another coordinator's key. */
export class InstanceBoundError extends Error {
  constructor(
    readonly key: string,
    readonly boundTo: string,
  ) {
    super(`instance ${key} is bound to another key`);
  }
}

export function instanceKeyOf(
  product: string,
  instanceId: string | undefined,
  sourceIp: string,
): string {
  return instanceId === undefined ? `${product}@ip:${sourceIp}` : `${product}@id:${instanceId}`;
}

export function dirNameOf(product: string, key: string): string {
  const safe = product
    .toLowerCase()
    .replace(/[^a-z0-9._-]/g, '_')
    .slice(0, 32);
  return `${safe}-${createHash('sha256').update(key).digest('hex').slice(0, 16)}`;
}

export class Instance {
  readonly tasks = new Map<string, TaskRecord>();
  connections = 0;
  /**
   * When it last had a connection or a task, as far as this agent run knows (the record's
   * lastSeen covers connections across restarts): what idle removal goes by.
   */
  lastActive = 0;
  /** Set while the instance is being removed (instance-removal.ts): open() waits for it. */
  removal: Promise<void> | undefined;
  private saving: Promise<void> = Promise.resolve();

  constructor(
    readonly record: InstanceRecord,
    readonly dir: string,
    readonly recordFile: string,
  ) {}

  get key(): string {
    return this.record.key;
  }

  versionDir(versionId: string): string {
    return join(this.dir, 'versions', versionId);
  }

  workDir(taskId: string): string {
    return join(this.dir, 'work', taskId);
  }

  /** With task users: the blob dir its host sees (blob-view.ts), HOME and TMPDIR. */
  get blobViewDir(): string {
    return join(this.dir, 'blobs');
  }

  get homeDir(): string {
    return join(this.dir, 'home');
  }

  get tmpDir(): string {
    return join(this.dir, 'tmp');
  }

  /**
   * Records a sync of this version. Returns whether the record needs saving: a re-sync of the
   * current version only refreshes its time (what retention goes by) once a minute, so a
   * reconnecting coordinator does not cost a file write each time.
   */
  noteVersion(versionId: string, label: string | undefined): boolean {
    const now = new Date();
    const existing = this.record.versions.find((v) => v.versionId === versionId);
    if (
      existing &&
      this.record.current === versionId &&
      now.getTime() - Date.parse(existing.syncedAt) < 60_000
    ) {
      return false;
    }
    const at = now.toISOString();
    if (existing) existing.syncedAt = at;
    else this.record.versions.push({ versionId, label: label ?? null, syncedAt: at });
    this.record.current = versionId;
    this.record.lastSeen = at;
    return true;
  }

  forgetVersion(versionId: string): void {
    this.record.versions = this.record.versions.filter((v) => v.versionId !== versionId);
    if (this.record.current === versionId) this.record.current = null;
  }

  /** Writes the record; writes are serialised so the file always holds the latest state. */
  save(): Promise<void> {
    // A failed earlier write was its caller's to report; this one goes on.
    this.saving = this.saving
      .catch(() => undefined)
      .then(() => writeAtomic(this.recordFile, `${JSON.stringify(this.record, null, 2)}\n`));
    return this.saving;
  }
}

export class InstanceRegistry {
  private readonly byKey = new Map<string, Instance>();
  private readonly recordsDir: string;

  constructor(
    dataDir: string,
    private readonly tempDir: string,
  ) {
    this.recordsDir = join(dataDir, 'instances');
  }

  async load(): Promise<void> {
    await mkdir(this.recordsDir, { recursive: true, mode: 0o700 });
    const now = Date.now();
    for (const record of await readInstanceRecords(this.recordsDir)) {
      const instance = this.make(record);
      // Idle time counts while this agent runs: one that was stopped for a month does not
      // drop every instance as it starts.
      instance.lastActive = now;
      this.byKey.set(record.key, instance);
    }
  }

  /**
   * The instance for this identity, created (and saved) on first sight, with one connection
   * counted (the caller's, which it gives back with `connections--`). An instance id is bound to
   * the first `publicKey` that claims it (the caller has checked the claim's signature); another
   * key gets InstanceBoundError and changes nothing. An instance being removed is waited for,
   * then made anew.
   */
  async open(
    product: string,
    instanceId: string | undefined,
    sourceIp: string,
    publicKey?: string,
  ): Promise<Instance> {
    const key = instanceKeyOf(product, instanceId, sourceIp);
    const removal = this.byKey.get(key)?.removal;
    // eslint-disable-next-line no-restricted-syntax -- waits for the removal to end; whoever removes logs its failure
    if (removal !== undefined) await removal.catch(() => undefined);
    let instance = this.byKey.get(key);
    const bound = instance?.record.publicKey;
    if (instanceId !== undefined && bound && bound !== publicKey)
      throw new InstanceBoundError(key, bound);
    const now = new Date().toISOString();
    if (instance === undefined) {
      instance = this.make({
        product,
        key,
        instanceId: instanceId ?? null,
        sourceIp: instanceId === undefined ? sourceIp : null,
        dirName: dirNameOf(product, key),
        createdAt: now,
        lastSeen: now,
        current: null,
        publicKey: null,
        lastAddress: null,
        lastConnected: null,
        taskUser: null,
        versions: [],
      });
      this.byKey.set(key, instance);
    }
    if (instanceId !== undefined && !instance.record.publicKey && publicKey)
      instance.record.publicKey = publicKey;
    instance.record.lastSeen = now;
    instance.record.lastAddress = sourceIp;
    instance.record.lastConnected = now;
    // Counted before the first await: from here on nothing removes it under this connection.
    instance.connections++;
    try {
      await mkdir(join(instance.dir, 'versions'), { recursive: true, mode: 0o700 });
      await mkdir(join(instance.dir, 'work'), { recursive: true, mode: 0o700 });
      await mkdir(join(instance.dir, 'output'), { recursive: true, mode: 0o700 });
      await instance.save();
    } catch (err) {
      instance.connections--;
      throw err;
    }
    return instance;
  }

  /** The key the instance with this id is bound to, if it is. */
  boundKey(product: string, instanceId: string): string | undefined {
    return this.byKey.get(instanceKeyOf(product, instanceId, ''))?.record.publicKey ?? undefined;
  }

  /** Forgets the key an instance is bound to (an agent admin's reset): the next claim binds it. */
  async unbind(key: string): Promise<boolean> {
    const instance = this.byKey.get(key);
    if (!instance?.record.publicKey) return false;
    instance.record.publicKey = null;
    await instance.save();
    return true;
  }

  list(): Instance[] {
    return [...this.byKey.values()];
  }

  get(key: string): Instance | undefined {
    return this.byKey.get(key);
  }

  /**
   * Forgets an instance: its record (and with it its binding) and its directory. The caller has
   * made sure nothing uses it (no connection, no task, no host process).
   */
  async remove(instance: Instance): Promise<void> {
    if (this.byKey.get(instance.key) !== instance) return;
    this.byKey.delete(instance.key);
    // eslint-disable-next-line no-restricted-syntax -- waits for a pending write, which must not recreate the record after the rm below
    await instance.save().catch(() => undefined);
    await rm(instance.recordFile, { force: true });
    await rm(instance.dir, { recursive: true, force: true });
  }

  private make(record: InstanceRecord): Instance {
    return new Instance(
      record,
      join(this.tempDir, 'instances', record.dirName),
      join(this.recordsDir, `${record.dirName}.json`),
    );
  }
}

/** Reads every instance record in <data>/instances; unreadable files are skipped. */
export async function readInstanceRecords(recordsDir: string): Promise<InstanceRecord[]> {
  const records: InstanceRecord[] = [];
  for (const name of await readdir(recordsDir).catch(() => [] as string[])) {
    if (!name.endsWith('.json')) continue;
    try {
      const parsed = instanceRecordSchema.safeParse(
        JSON.parse(await readFile(join(recordsDir, name), 'utf8')),
      );
      if (parsed.success) records.push(parsed.data);
    } catch {
      // A half-written or foreign file: not an instance.
    }
  }
  return records.sort((a, b) => a.key.localeCompare(b.key));
}
