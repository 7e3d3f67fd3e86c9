/** Labels as typed in a form: comma-separated, blanks dropped. */
export function labelsOf(text: string): string[] {
  return text
    .split(',')
    .map((l) => l.trim())
    .filter((l) => l !== '');
}
