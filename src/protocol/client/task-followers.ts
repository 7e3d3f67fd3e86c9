/**
 * The tasks a connection follows: their output as it comes, and their result when they end.
 * A task is followed from its start (or re-attach) until its `task.done` or the connection's
 * close, which fails every result still open.
 */
import type { MusterError } from '../errors.js';
import type { OutputStream, TaskResult } from '../task-types.js';

export interface OutputChunk {
  seq: number;
  stream: OutputStream;
  data: Buffer;
}

interface Following {
  onOutput?: (chunk: OutputChunk) => void;
  resolve(result: TaskResult): void;
  reject(err: MusterError): void;
}

export class TaskFollowers {
  private readonly following = new Map<string, Following>();

  follow(taskId: string, onOutput?: (chunk: OutputChunk) => void): Promise<TaskResult> {
    const result = new Promise<TaskResult>((resolve, reject) => {
      this.following.set(taskId, { ...(onOutput ? { onOutput } : {}), resolve, reject });
    });
    // Closing a connection rejects the results it followed; a caller that walked away from a
    // task (it will re-attach later) must not get an unhandled rejection for that.
    // eslint-disable-next-line no-restricted-syntax -- see above; a caller that awaits gets it
    result.catch(() => undefined);
    return result;
  }

  /** The agent refused to start or attach: nothing to follow. */
  unfollow(taskId: string): void {
    this.following.delete(taskId);
  }

  output(taskId: string, chunk: OutputChunk): void {
    this.following.get(taskId)?.onOutput?.(chunk);
  }

  done(taskId: string, result: TaskResult): void {
    const following = this.following.get(taskId);
    this.following.delete(taskId);
    following?.resolve(result);
  }

  failAll(err: MusterError): void {
    for (const following of this.following.values()) following.reject(err);
    this.following.clear();
  }
}
