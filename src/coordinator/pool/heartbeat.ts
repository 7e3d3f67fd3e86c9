/**
 * An agent connection's heartbeat: every interval one beat (a ping, or a lease renewal), never a
 * second while one is unanswered. An answer due for two intervals ends the connection — unless
 * the connection moved meanwhile (the agent read what was sent, or sent anything): a beat queued
 * behind a large input on a slow or busy link is late, not lost. Then it waits two intervals
 * more, and so on while the connection moves. A beat that fails ends the connection too.
 */
export interface HeartbeatPorts {
  readonly intervalMs: number;
  /** One beat: resolves with the agent's answer. */
  beat(): Promise<void>;
  /** A number that grows while the connection moves (FramedConnection.progress). */
  progress(): number;
  /** Ends the connection: the agent did not answer, and nothing moved. */
  close(): void;
}

/** Starts beating; the returned function stops it (a beat in flight is then left alone). */
export function startHeartbeat(ports: HeartbeatPorts): () => void {
  let beating = false;
  let stopped = false;
  let timeout: NodeJS.Timeout | undefined;
  const interval = setInterval(() => {
    if (beating) return;
    beating = true;
    const waitMs = ports.intervalMs * 2;
    let answered = false;
    let seen = 0;
    const due = (): void => {
      const now = ports.progress();
      if (now === seen) {
        if (!stopped) ports.close();
        return;
      }
      seen = now;
      timeout = setTimeout(due, waitMs);
    };
    ports
      .beat()
      .catch(() => {
        if (!stopped) ports.close();
      })
      .finally(() => {
        answered = true;
        clearTimeout(timeout);
        beating = false;
      });
    // Counted from once the beat itself has left (its frame goes out at the next tick): the
    // beat's own bytes are not the agent's sign of life.
    setImmediate(() => {
      if (answered || stopped) return;
      seen = ports.progress();
      timeout = setTimeout(due, waitMs);
    });
  }, ports.intervalMs);
  interval.unref();
  return () => {
    stopped = true;
    clearInterval(interval);
    clearTimeout(timeout);
  };
}
