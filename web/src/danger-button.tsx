/** A button for a change that cannot be undone: it asks first (the browser's own dialog). */
import type { ComponentChildren } from 'preact';

export function DangerButton({
  question,
  disabled,
  title,
  onConfirmed,
  children,
}: {
  /** What is about to happen and what follows from it, as a question. */
  question: string;
  disabled: boolean;
  title?: string | undefined;
  onConfirmed: () => void;
  children: ComponentChildren;
}) {
  return (
    <button
      type="button"
      class="danger"
      disabled={disabled}
      title={title}
      onClick={() => {
        if (window.confirm(question)) onConfirmed();
      }}
    >
      {children}
    </button>
  );
}
