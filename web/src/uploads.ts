/**
 * Files the user picks in the browser, uploaded by content hash like `muster run` does: hash each
 * (SHA-256, streamed, so large files never sit in memory whole), ask which ones the coordinator
 * lacks, send only those. @noble/hashes works on plain HTTP too, where crypto.subtle is absent.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex } from '@noble/hashes/utils.js';
import { formatBytes } from '../../src/api/format.js';
import { missingBlobs, putBlob, type FileRef } from './api.js';

/** A picked file and its path relative to the picked folder (or its name). */
export interface PickedFile {
  path: string;
  file: File;
}

/** Never uploaded from a picked folder, as `muster run` never uploads them by a glob. */
const SKIPPED_DIRS = new Set(['node_modules', '.git', '.muster']);

/**
 * The files of an <input type="file"> (multiple, or a folder with webkitdirectory). A folder's
 * own name is dropped from the paths: it stands for the plan's (or extension's) folder.
 */
export function pickedFiles(list: FileList | null, skip = SKIPPED_DIRS): PickedFile[] {
  const picked: PickedFile[] = [];
  for (const file of list ?? []) {
    const relative = file.webkitRelativePath;
    const segments = relative ? relative.split('/').slice(1) : [file.name];
    if (segments.slice(0, -1).some((s) => skip.has(s))) continue;
    picked.push({ path: segments.join('/'), file });
  }
  return picked.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

async function hashFile(file: Blob): Promise<string> {
  const hash = sha256.create();
  const reader = file.stream().getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    hash.update(value);
  }
  return bytesToHex(hash.digest());
}

/**
 * Hashes and uploads what the coordinator lacks; `progress` hears what is happening in words.
 * Browsers know no execute bit, so every file arrives with mode 0644 (run scripts with `sh x`).
 */
export async function uploadFiles(
  picked: readonly PickedFile[],
  progress: (text: string) => void,
): Promise<FileRef[]> {
  const refs: FileRef[] = [];
  for (const [i, p] of picked.entries()) {
    progress(`Reading ${p.path} (${i + 1} of ${picked.length})…`);
    refs.push({ path: p.path, sha256: await hashFile(p.file), size: p.file.size, mode: 0o644 });
  }
  const { missing } = await missingBlobs([...new Set(refs.map((r) => r.sha256))]);
  const lacking = new Set(missing);
  let sent = 0;
  for (const [i, ref] of refs.entries()) {
    if (!lacking.delete(ref.sha256)) continue;
    sent += 1;
    progress(`Uploading ${ref.path} (${sent} of ${missing.length})…`);
    const file = picked[i]?.file;
    if (file) await putBlob(ref.sha256, file);
  }
  return refs;
}

/** "3 files, 1.2 MiB" */
export function describePicked(picked: readonly PickedFile[]): string {
  const bytes = picked.reduce((n, p) => n + p.file.size, 0);
  return `${picked.length} ${picked.length === 1 ? 'file' : 'files'}, ${formatBytes(bytes)}`;
}
