/**
 * Byte counts as people write them, everywhere Muster reads one (flags, settings): a number, or
 * a number with a unit — B; k, KB (10^3); KiB (2^10); M, MB, MiB; G, GB, GiB; T, TB, TiB — any
 * case, a space allowed before the unit ("512MiB", "20 GB", "1.5G").
 */
const UNITS: Readonly<Record<string, number>> = {
  '': 1,
  b: 1,
  k: 1e3,
  kb: 1e3,
  kib: 2 ** 10,
  m: 1e6,
  mb: 1e6,
  mib: 2 ** 20,
  g: 1e9,
  gb: 1e9,
  gib: 2 ** 30,
  t: 1e12,
  tb: 1e12,
  tib: 2 ** 40,
};

export const SIZE_EXAMPLES = '1048576, 512MiB, 20GB, 10GiB';

/** The bytes `text` says (rounded down), or undefined when it is not a size. */
export function parseSize(text: number | string): number | undefined {
  if (typeof text === 'number')
    return Number.isFinite(text) && text >= 0 ? Math.floor(text) : undefined;
  const match = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(text.trim());
  if (match === null) return undefined;
  const unit = UNITS[(match[2] ?? '').toLowerCase()];
  // A fraction of a byte is not a size; of a unit it is ("1.5GiB").
  if (unit === undefined || (unit === 1 && (match[1] ?? '').includes('.'))) return undefined;
  return Math.floor(Number(match[1]) * unit);
}
