/** A JSON object (not null, not an array): what parsed input must be before its fields are read. */
export function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}
