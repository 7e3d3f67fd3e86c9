/**
 * gcc's path prefix maps (`-fdebug-prefix-map=OLD=NEW`, `-ffile-prefix-map=OLD=NEW`,
 * `-fmacro-prefix-map=OLD=NEW`): gcc checks the most recently given map first and applies the
 * first whose OLD is a plain string prefix of the path (gcc 12 `remap_debug_filename`; no
 * path-boundary check). `-ffile-prefix-map` counts as both a debug and a macro map.
 */

export interface PrefixMap {
  readonly kind: 'debug' | 'file' | 'macro';
  readonly from: string;
  readonly to: string;
}

const kinds = [
  ['-fdebug-prefix-map=', 'debug'],
  ['-ffile-prefix-map=', 'file'],
  ['-fmacro-prefix-map=', 'macro'],
] as const;

/** The map an argument gives, or null when it is not a map (or has no `=`, which gcc refuses). */
export function parsePrefixMap(arg: string): PrefixMap | null {
  for (const [option, kind] of kinds) {
    if (!arg.startsWith(option)) continue;
    const rest = arg.slice(option.length);
    const eq = rest.indexOf('=');
    if (eq < 0) return null;
    return { kind, from: rest.slice(0, eq), to: rest.slice(eq + 1) };
  }
  return null;
}

/** `path` as the debug information records it under `maps` (in command-line order). */
export function mapDebugPath(path: string, maps: readonly PrefixMap[]): string {
  for (let i = maps.length - 1; i >= 0; i--) {
    const map = maps[i];
    if (map === undefined || map.kind === 'macro') continue;
    if (path.startsWith(map.from)) return map.to + path.slice(map.from.length);
  }
  return path;
}
