/**
 * The shared cache's direct keys as the compile service last heard them (GET /cache/directs):
 * the first 4 bytes of every key the coordinator has manifest lines under. A compile whose
 * direct key is not on the list has nothing to find there, so it skips the lookup's round trip
 * — in a clean build, every compile: a request less each for the coordinator and this process,
 * and no wait before the compiler starts.
 *
 * The list only ever says "surely not there" while it is fresh: heard within DIRECTS_TRUST_MS
 * (otherwise every key is looked up, as without a list). It is brought up to date in the
 * background, one request at a time, when a lookup finds it older than DIRECTS_REFRESH_MS, and
 * by the key numbers the coordinator gives (only what came after the last one heard), or from the
 * first when the coordinator's numbering is another (it restarted; another coordinator of the
 * pair answers now). A key this process stores is put on the list at once. So a key another
 * machine stored in the last DIRECTS_TRUST_MS at most can be missed: that compile runs, as it
 * would have if it had started a little earlier. A prefix another key shares (one in 2^32 a key)
 * only costs the lookup the list would have saved.
 *
 * Bounds: at most DIRECTS_MAX_KEYS prefixes (4 bytes each, sorted, searched by halves; fewer
 * than MERGE_AT added since the last merge, in a set), an update of at most as many pages as
 * those make (a reset's thrown-away pages counted), every page but the last full: a coordinator
 * that says it has more keys is looked up as before for DIRECTS_OFF_MS, and so is one without
 * the route (an older one). An answer that is not a page (checked) leaves the list as it was,
 * and the next update waits DIRECTS_REFRESH_MS.
 */
import { cacheDirectsAnswer, checkAnswer } from './coordinator-answers.js';
import { CACHE_DIRECTS_PAGE } from '../../api/requests.js';
import { MusterError } from '../../protocol/errors.js';

/** A lookup finding the list older than this brings it up to date (in the background). */
export const DIRECTS_REFRESH_MS = 5_000;
/**
 * A list heard longer ago than this says nothing: every key is looked up (an update has had
 * DIRECTS_TRUST_MS − DIRECTS_REFRESH_MS to land, or failed).
 */
export const DIRECTS_TRUST_MS = 10_000;
/** Prefixes kept at most (32 MiB). */
export const DIRECTS_MAX_KEYS = 8 * 1024 * 1024;
/** After a refusal or a list over the bound, no list for this long. */
export const DIRECTS_OFF_MS = 10 * 60_000;
/** Keys added one by one are merged into the sorted prefixes once there are this many. */
const MERGE_AT = 16_384;

/** One page of GET /cache/directs after `since` of listing `epoch` (the answer unchecked). */
export type FetchDirects = (epoch: string | undefined, since: number) => Promise<unknown>;

/** The key's first 4 bytes as a number, or null when it is not a hex key. */
function prefixOf(direct: string): number | null {
  const head = direct.slice(0, 8);
  return /^[0-9a-f]{8}$/.test(head) ? Number.parseInt(head, 16) : null;
}

/** `values` sorted, each once. */
function sortedUnique(values: Uint32Array): Uint32Array {
  values.sort();
  let n = 0;
  for (let i = 0; i < values.length; i++) {
    if (i === 0 || values[i] !== values[n - 1]) values[n++] = values[i]!;
  }
  return values.slice(0, n);
}

function concat(parts: readonly Uint32Array[]): Uint32Array {
  const all = new Uint32Array(parts.reduce((sum, p) => sum + p.length, 0));
  let at = 0;
  for (const part of parts) {
    all.set(part, at);
    at += part.length;
  }
  return all;
}

function holds(sorted: Uint32Array, value: number): boolean {
  let lo = 0;
  let hi = sorted.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const at = sorted[mid]!;
    if (at === value) return true;
    if (at < value) lo = mid + 1;
    else hi = mid - 1;
  }
  return false;
}

/** A page's prefixes as numbers (big-endian, 4 bytes each). */
function prefixesOf(base64: string): Uint32Array {
  const bytes = Buffer.from(base64, 'base64');
  if (bytes.length % 4 !== 0)
    throw new MusterError('INTERNAL', "the coordinator's direct keys are not 4 bytes each");
  const values = new Uint32Array(bytes.length / 4);
  for (let i = 0; i < values.length; i++) values[i] = bytes.readUInt32BE(i * 4);
  return values;
}

export class DirectKeys {
  #sorted: Uint32Array = new Uint32Array(0);
  #added = new Set<number>();
  /** The numbering the list follows, and the number of the last key heard. */
  #epoch: string | undefined;
  #next = 0;
  /** When the last complete update started (the list is as of then). */
  #heardAt: number | undefined;
  /** No request before this (after a failure: one every DIRECTS_REFRESH_MS; off: longer). */
  #quietUntil = 0;
  #updating: Promise<void> | undefined;

  readonly #now: () => number;
  readonly #maxKeys: number;

  constructor(options: { now?: () => number; maxKeys?: number } = {}) {
    this.#now = options.now ?? Date.now;
    this.#maxKeys = options.maxKeys ?? DIRECTS_MAX_KEYS;
  }

  /** Prefixes on the list. */
  get size(): number {
    return this.#sorted.length + this.#added.size;
  }

  /** The update in flight, if any. */
  get updating(): Promise<void> | undefined {
    return this.#updating;
  }

  /** True only when the list is fresh and `direct` is not on it: a lookup would find nothing. */
  lacks(direct: string): boolean {
    const heard = this.#heardAt;
    if (heard === undefined || this.#now() - heard > DIRECTS_TRUST_MS) return false;
    const prefix = prefixOf(direct);
    if (prefix === null) return false;
    return !this.#added.has(prefix) && !holds(this.#sorted, prefix);
  }

  /** A key this process stores on the coordinator (or its prefix, heard from it). */
  add(direct: string | number): void {
    const prefix = typeof direct === 'number' ? direct : prefixOf(direct);
    if (prefix === null || holds(this.#sorted, prefix)) return;
    this.#added.add(prefix);
    if (this.#added.size >= MERGE_AT) this.#merge();
  }

  /** Starts an update when the list is older than DIRECTS_REFRESH_MS and none is running. */
  refresh(fetch: FetchDirects): void {
    if (this.#updating !== undefined) return;
    const now = this.#now();
    if (now < this.#quietUntil) return;
    if (this.#heardAt !== undefined && now - this.#heardAt < DIRECTS_REFRESH_MS) return;
    this.#updating = this.#update(fetch)
      .catch(() => {
        // Out of memory sorting, say: no list, as for a coordinator over the bound.
        this.#off();
      })
      .finally(() => {
        this.#updating = undefined;
      });
  }

  /** Fetches what came after the last key heard (or everything), page by page. */
  async #update(fetch: FetchDirects): Promise<void> {
    const started = this.#now();
    let epoch = this.#epoch;
    let since = this.#next;
    let reset = false;
    let pages: Uint32Array[] = [];
    let total = 0;
    let count: number;
    // Every page counts, those a reset throws away too: a coordinator that keeps answering
    // "more" or "from the first" is not asked without end.
    let budget = Math.ceil(this.#maxKeys / CACHE_DIRECTS_PAGE) + 2;
    try {
      for (;;) {
        if (budget-- === 0)
          throw new MusterError('INTERNAL', "the coordinator's direct keys never end");
        const page = checkAnswer(cacheDirectsAnswer, await fetch(epoch, since), 'direct keys');
        // The number this page goes on from: the caller's, or none after a reset.
        const from = page.reset ? 0 : since;
        if (page.reset) {
          // From the first (maybe again: the coordinator restarted meanwhile).
          reset = true;
          pages = [];
          total = 0;
        } else if (page.epoch !== epoch || page.next < since) {
          throw new MusterError('INTERNAL', "the coordinator's direct keys went backwards");
        }
        const prefixes = prefixesOf(page.prefixes);
        // Only a full page is followed by more (the route's rule): no page of one key each.
        if (page.more && (prefixes.length !== CACHE_DIRECTS_PAGE || page.next <= from))
          throw new MusterError('INTERNAL', "the coordinator's direct keys do not move on");
        if (page.count > this.#maxKeys || total + prefixes.length > this.#maxKeys) {
          this.#off();
          return;
        }
        pages.push(prefixes);
        total += prefixes.length;
        epoch = page.epoch;
        since = page.next;
        count = page.count;
        if (!page.more) break;
      }
    } catch (err) {
      if (err instanceof MusterError && err.code === 'NOT_FOUND') this.#off();
      else this.#quietUntil = this.#now() + DIRECTS_REFRESH_MS;
      return;
    }
    if (reset) {
      // The keys added since the last merge (this process's, and a few of the coordinator's)
      // stay on: saying too much costs a lookup, too little a hit.
      this.#sorted = sortedUnique(concat([...pages, Uint32Array.from(this.#added)]));
      this.#added.clear();
    } else if (total >= MERGE_AT) {
      this.#sorted = sortedUnique(concat([this.#sorted, ...pages, Uint32Array.from(this.#added)]));
      this.#added.clear();
    } else {
      for (const page of pages) for (const prefix of page) this.add(prefix);
    }
    if (this.size > this.#maxKeys) {
      this.#off();
      return;
    }
    // Keys that went are never said one by one: when the list holds far more than the
    // coordinator has, the next update starts from the first.
    this.#epoch = this.size > 2 * count + MERGE_AT ? undefined : epoch;
    this.#next = since;
    this.#heardAt = started;
  }

  #merge(): void {
    this.#sorted = sortedUnique(concat([this.#sorted, Uint32Array.from(this.#added)]));
    this.#added.clear();
  }

  /** No list: every key is looked up, for DIRECTS_OFF_MS. */
  #off(): void {
    this.#sorted = new Uint32Array(0);
    this.#added.clear();
    this.#epoch = undefined;
    this.#next = 0;
    this.#heardAt = undefined;
    this.#quietUntil = this.#now() + DIRECTS_OFF_MS;
  }
}

/** Lists kept for this many coordinators at most (a service lives long; URLs come and go). */
const MAX_LISTS = 4;
const lists = new Map<string, DirectKeys>();

/**
 * The list of the coordinator configured at `url` (its backup's answers go in the same list: the
 * same keys, replicated), shared by every build and session of this process.
 */
export function directKeysOf(url: string): DirectKeys {
  let list = lists.get(url);
  if (list === undefined) {
    list = new DirectKeys();
    lists.set(url, list);
    if (lists.size > MAX_LISTS) lists.delete(lists.keys().next().value!);
  }
  return list;
}
