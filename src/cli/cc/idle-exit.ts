/** `muster cc --serve --idle-exit D`: calls `onIdle` once the service has had no shim for D. */
import type { CompileService } from './service.js';

/** Starts watching; returns a function that stops it. `idleMs` 0 never fires. */
export function watchIdle(
  service: Pick<CompileService, 'state' | 'idleMs'>,
  idleMs: number,
  onIdle: () => void,
): () => void {
  if (idleMs <= 0) return () => undefined;
  const timer = setInterval(
    () => {
      if (service.state === 'running' && service.idleMs() >= idleMs) {
        clearInterval(timer);
        onIdle();
      }
    },
    Math.min(Math.max(idleMs / 10, 20), 5_000),
  );
  return () => clearInterval(timer);
}
