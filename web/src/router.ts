/** The UI's paths: the browser's own (the server answers index.html for them). */
import { useEffect, useState } from 'preact/hooks';

export function usePath(): string {
  const [path, setPath] = useState(window.location.pathname);
  useEffect(() => {
    const onPop = (): void => setPath(window.location.pathname);
    window.addEventListener('popstate', onPop);
    window.addEventListener('muster:navigate', onPop);
    return () => {
      window.removeEventListener('popstate', onPop);
      window.removeEventListener('muster:navigate', onPop);
    };
  }, []);
  return path;
}

export function navigate(path: string): void {
  if (window.location.pathname === path) return;
  window.history.pushState(null, '', path);
  window.dispatchEvent(new Event('muster:navigate'));
}

/** A link that changes the page without a reload (a normal link for middle clicks). */
export function onLink(event: MouseEvent, path: string): void {
  if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey) return;
  event.preventDefault();
  navigate(path);
}
