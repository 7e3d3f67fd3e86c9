/**
 * The tasks a connection follows (started or re-attached on it): their output and result go to
 * the peer as they come. When the connection closes, the tasks keep running and their records
 * keep the output for the next connection of the instance to re-attach.
 */
import type { FramedConnection } from '../protocol/connection.js';
import type { AgentWireMessage } from '../protocol/messages.js';
import type { TaskFollower, TaskRecord } from './task-record.js';

export class FollowedTasks {
  private readonly following = new Map<TaskRecord, TaskFollower>();

  constructor(private readonly conn: FramedConnection<AgentWireMessage>) {}

  /** This connection's follower of `record` (one per task, however often it attaches). */
  followerFor(record: TaskRecord): TaskFollower {
    const existing = this.following.get(record);
    if (existing) return existing;
    const follower: TaskFollower = {
      output: (entry) =>
        this.conn.sendJson({
          t: 'task.output',
          taskId: record.taskId,
          seq: entry.seq,
          stream: entry.stream,
          data: entry.data.toString('base64'),
        }),
      done: (result) => {
        this.following.delete(record);
        this.conn.sendJson({ t: 'task.done', taskId: record.taskId, result });
      },
    };
    this.following.set(record, follower);
    return follower;
  }

  unfollowAll(): void {
    for (const [record, follower] of this.following) record.unfollow(follower);
    this.following.clear();
  }
}
