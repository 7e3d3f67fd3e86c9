/**
 * What the agent keeps of one task: its output (numbered entries; the first part in memory, the
 * rest spilled to a file, all of it bounded), its result, the process groups it started, and
 * the one connection currently following it. A task outlives the connection that started it;
 * its record lives until the client releases it or the grace period after it ended runs out.
 */
import { createWriteStream, type WriteStream } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import type { OutputStream, TaskResult, TaskSpec } from '../protocol/task-types.js';

export interface OutputEntry {
  seq: number;
  stream: OutputStream;
  data: Buffer;
}

export interface TaskFollower {
  output(entry: OutputEntry): void;
  done(result: TaskResult): void;
}

export interface TaskRecordLimits {
  memoryBytes: number;
  maxBytes: number;
}

export class TaskRecord {
  readonly startedAt = new Date();
  state: 'running' | 'done' = 'running';
  result: TaskResult | undefined;
  endedAt: number | undefined;
  readonly processGroups = new Set<number>();
  private follower: TaskFollower | undefined;
  private nextSeq = 0;
  private memory: OutputEntry[] = [];
  private memoryBytes = 0;
  private totalBytes = 0;
  private truncated = false;
  private spill: WriteStream | undefined;
  private spilledUpTo = 0;
  private replaying: OutputEntry[] | undefined;

  constructor(
    readonly spec: TaskSpec,
    readonly workDir: string,
    private readonly spillFile: string,
    private readonly limits: TaskRecordLimits,
  ) {}

  get taskId(): string {
    return this.spec.taskId;
  }

  get seq(): number {
    return this.nextSeq;
  }

  get isFollowed(): boolean {
    return this.follower !== undefined;
  }

  /** Blobs this task still needs kept: its inputs and its outputs. */
  referencedBlobs(): string[] {
    return [
      ...(this.spec.inputs ?? []).map((f) => f.sha256),
      ...(this.result?.outputs ?? []).map((f) => f.sha256),
    ];
  }

  append(stream: OutputStream, data: Buffer): void {
    if (this.state === 'done' || data.length === 0) return;
    if (this.truncated) return;
    if (this.totalBytes + data.length > this.limits.maxBytes) {
      this.truncated = true;
      data = Buffer.from(`\n[muster: output truncated after ${this.limits.maxBytes} bytes]\n`);
      stream = 'log';
    }
    this.totalBytes += data.length;
    const entry: OutputEntry = { seq: this.nextSeq++, stream, data };
    if (this.spill === undefined && this.memoryBytes + data.length <= this.limits.memoryBytes) {
      this.memory.push(entry);
      this.memoryBytes += data.length;
    } else {
      this.writeSpill(entry);
    }
    if (this.replaying) this.replaying.push(entry);
    else this.follower?.output(entry);
  }

  finish(result: TaskResult): void {
    if (this.state === 'done') return;
    this.state = 'done';
    this.result = result;
    this.endedAt = Date.now();
    this.spill?.end();
    if (!this.replaying) this.follower?.done(result);
  }

  /**
   * Makes `follower` the one connection following this task: replays entries from `fromSeq`,
   * then live output, then the result. A previous follower stops receiving.
   */
  async follow(follower: TaskFollower, fromSeq: number): Promise<void> {
    this.follower = follower;
    if (fromSeq >= this.nextSeq) {
      if (this.state === 'done' && this.result) follower.done(this.result);
      return;
    }
    this.replaying = [];
    try {
      const spilled = this.spilledUpTo > 0 ? await this.readSpill() : [];
      for (const entry of [...this.memory, ...spilled]) {
        if (entry.seq >= fromSeq && this.follower === follower) follower.output(entry);
      }
      // Entries appended while reading the spill file.
      const seen = Math.max(this.memory.at(-1)?.seq ?? -1, spilled.at(-1)?.seq ?? -1);
      for (const entry of this.replaying) {
        if (entry.seq > seen && entry.seq >= fromSeq && this.follower === follower)
          follower.output(entry);
      }
    } finally {
      this.replaying = undefined;
    }
    if (this.state === 'done' && this.result && this.follower === follower)
      follower.done(this.result);
  }

  unfollow(follower: TaskFollower): void {
    if (this.follower === follower) this.follower = undefined;
  }

  /** Forgets the record's files (spilled output). The work dir is removed by the caller. */
  async dispose(): Promise<void> {
    this.follower = undefined;
    this.spill?.destroy();
    this.memory = [];
    if (this.spill !== undefined) await rm(this.spillFile, { force: true });
  }

  private writeSpill(entry: OutputEntry): void {
    if (this.spill === undefined) {
      this.spill = createWriteStream(this.spillFile, { flags: 'w', mode: 0o600 });
      this.spill.on('error', () => {
        // Disk full or similar: the output is lost from here on, the task itself is not.
        this.truncated = true;
      });
    }
    const header = Buffer.allocUnsafe(9);
    header.writeUInt32BE(entry.seq, 0);
    header.writeUInt8(entry.stream === 'stdout' ? 1 : entry.stream === 'stderr' ? 2 : 3, 4);
    header.writeUInt32BE(entry.data.length, 5);
    this.spill.write(header);
    this.spill.write(entry.data);
    this.spilledUpTo = entry.seq + 1;
  }

  private async readSpill(): Promise<OutputEntry[]> {
    const spill = this.spill;
    if (spill && !spill.writableFinished) {
      // Wait until what was written so far is on disk.
      await new Promise<void>((resolve) => {
        if (spill.writableLength === 0 || spill.destroyed) resolve();
        else spill.write(Buffer.alloc(0), () => resolve());
      });
    }
    const bytes = await readFile(this.spillFile).catch(() => Buffer.alloc(0));
    const entries: OutputEntry[] = [];
    let at = 0;
    while (at + 9 <= bytes.length) {
      const seq = bytes.readUInt32BE(at);
      const kind = bytes.readUInt8(at + 4);
      const length = bytes.readUInt32BE(at + 5);
      if (at + 9 + length > bytes.length) break;
      entries.push({
        seq,
        stream: kind === 1 ? 'stdout' : kind === 2 ? 'stderr' : 'log',
        data: bytes.subarray(at + 9, at + 9 + length),
      });
      at += 9 + length;
    }
    return entries;
  }
}
