/** A message after an action: an error (role alert) or a confirmation (role status). */
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
