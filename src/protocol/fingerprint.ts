/** SHA-256 certificate fingerprints as users write them and as links pin them. */

/** A fingerprint's hex digits, upper case, whatever the colons, case or "sha256:" prefix. */
export function normaliseFingerprint(fingerprint: string): string {
  return fingerprint
    .replace(/^sha256:/i, '')
    .replace(/[^0-9a-f]/gi, '')
    .toUpperCase();
}

/**
 * A SHA-256 fingerprint as users give it (64 hex digits, any case, with or without colons or a
 * "sha256:" prefix) in the form Node and openssl print; undefined when it is not one.
 */
export function parseFingerprint(text: string): string | undefined {
  const hex = normaliseFingerprint(text);
  return /^[0-9A-F]{64}$/.test(hex) ? (hex.match(/../g) ?? []).join(':') : undefined;
}

export function sameFingerprint(a: string, b: string | undefined): boolean {
  return b !== undefined && normaliseFingerprint(a) === normaliseFingerprint(b);
}
