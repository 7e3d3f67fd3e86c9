/**
 * An agent connection's heartbeat: a beat (a ping, or a lease renewal) every interval, answered
 * or not — a renewal that reaches the agent keeps its lease even while its answers are late.
 * Each beat's answer is due within two intervals; one that is late ends the connection unless
 * the connection moved meanwhile (blob chunks of ours left for the agent, or it sent anything):
 * a beat queued behind a large input on a slow or busy link is late, not lost. Then it waits two intervals
 * more, and so on while the connection moves, up to MAX_LATE_INTERVALS in all. A beat that fails
 * ends the connection too (the request's own timeout included).
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

/** The longest a beat's answer is waited for, in intervals, however much the connection moves. */
export const MAX_LATE_INTERVALS = 10;

/** Starts beating; the returned function stops it (beats in flight are then left alone). */
export function startHeartbeat(ports: HeartbeatPorts): () => void {
  let stopped = false;
  const timers = new Set<NodeJS.Timeout>();
  const later = (run: () => void, ms: number): NodeJS.Timeout => {
    const timer = setTimeout(() => {
      timers.delete(timer);
      run();
    }, ms);
    timer.unref();
    timers.add(timer);
    return timer;
  };
  const end = (): void => {
    if (!stopped) ports.close();
  };
  const interval = setInterval(() => {
    const waitMs = ports.intervalMs * 2;
    let answered = false;
    let seen = ports.progress();
    let waited = 0;
    const due = (): void => {
      if (answered || stopped) return;
      const now = ports.progress();
      waited += 2;
      if (now === seen || waited >= MAX_LATE_INTERVALS) {
        end();
        return;
      }
      seen = now;
      timer = later(due, waitMs);
    };
    let timer = later(due, waitMs);
    ports
      .beat()
      .catch(end)
      .finally(() => {
        answered = true;
        clearTimeout(timer);
        timers.delete(timer);
      });
  }, ports.intervalMs);
  interval.unref();
  return () => {
    stopped = true;
    clearInterval(interval);
    for (const timer of timers) clearTimeout(timer);
    timers.clear();
  };
}
