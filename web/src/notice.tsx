/** A message after an action: an error (role alert) or a confirmation (role status). */
import { useState } from 'preact/hooks';

export interface NoticeText {
  error: boolean;
  text: string;
}

export function Notice({ notice }: { notice: NoticeText | string | undefined }) {
  if (notice === undefined) return null;
  const { error, text } = typeof notice === 'string' ? { error: true, text: notice } : notice;
  return (
    <p class={error ? 'error' : 'ok'} role={error ? 'alert' : 'status'}>
      {text}
    </p>
  );
}

export type Report = <T>(
  action: Promise<T>,
  done: string | ((result: T) => string),
) => Promise<boolean>;

/**
 * The notice of a page's actions: `report(action, done)` clears it, then shows `done` (or what
 * it makes of the action's result) or the action's error, and resolves to whether it succeeded.
 */
export function useReport(): [NoticeText | undefined, Report] {
  const [notice, setNotice] = useState<NoticeText>();
  const report: Report = (action, done) => {
    setNotice(undefined);
    return action.then(
      (result) => {
        setNotice({ error: false, text: typeof done === 'string' ? done : done(result) });
        return true;
      },
      (err: unknown) => {
        setNotice({ error: true, text: (err as Error).message });
        return false;
      },
    );
  };
  return [notice, report];
}
