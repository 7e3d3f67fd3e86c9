/**
 * The compiler toolchains a bundle carries (issue 13): coordinator/bundles.ts ships each as
 * `toolchains/<id>/…` with its description at `toolchains/<id>.json`, which the cc extension
 * needs to run it, so an agent synced with the bundle has exactly the ids of those descriptions.
 */
import type { Bundle } from '../../protocol/client/bundle.js';

const DESCRIPTION = /^toolchains\/([0-9a-f]{64})\.json$/;

export function toolchainsOf(bundle: Pick<Bundle, 'manifest'>): ReadonlySet<string> {
  const ids = new Set<string>();
  for (const file of bundle.manifest.files) {
    const id = DESCRIPTION.exec(file.path)?.[1];
    if (id !== undefined) ids.add(id);
  }
  return ids;
}
