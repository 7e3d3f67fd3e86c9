/**
 * The state an admin list page shares: the list (undefined until first loaded), why loading it
 * failed, the last action's notice, and `act`, which reports an action and then reloads the list
 * whatever its outcome.
 */
import { useEffect, useState } from 'preact/hooks';
import { useReport, type NoticeText, type Report } from './notice.js';

export interface ListState<T> {
  items: T[] | undefined;
  loadError: string | undefined;
  message: NoticeText | undefined;
  act: Report;
}

export function useList<T>(load: () => Promise<T[]>): ListState<T> {
  const [items, setItems] = useState<T[]>();
  const [loadError, setLoadError] = useState<string>();
  const [message, report] = useReport();
  const reload = (): void => {
    load()
      .then((list) => {
        setItems(list);
        setLoadError(undefined);
      })
      .catch((err: unknown) => setLoadError((err as Error).message));
  };
  useEffect(reload, []);
  const act: Report = (action, done) => report(action, done).finally(reload);
  return { items, loadError, message, act };
}
