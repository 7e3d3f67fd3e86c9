/**
 * The compile service's list of the shared cache's direct keys (direct-keys.ts) against a fake
 * GET /cache/directs that numbers keys as the coordinator does: "surely not there" only while
 * the list is fresh; updates by number, from the first on another epoch (also mid-update); the
 * keys this process stores; answers that are not pages, a route that is not there, and a list
 * over its bound leave every key looked up. (The real route and the service using it:
 * routes-cache, cache-store, e2e/cc-build.)
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import { CACHE_DIRECTS_PAGE } from '../../src/api/requests.js';
import { cacheDirectsAnswer, checkAnswer } from '../../src/cli/cc/coordinator-answers.js';
import { directsView } from '../../src/coordinator/api/cache-routes.js';
import { MusterError } from '../../src/protocol/errors.js';
import {
  DIRECTS_OFF_MS,
  DIRECTS_REFRESH_MS,
  DIRECTS_TRUST_MS,
  DirectKeys,
  type FetchDirects,
} from '../../src/cli/cc/direct-keys.js';

const key = (text: string): string => createHash('sha256').update(text).digest('hex');
/** The i-th of many keys, cheaply: distinct first 4 bytes. */
const nth = (i: number): string => i.toString(16).padStart(8, '0') + 'a'.repeat(56);
const many = (n: number, offset = 0): string[] =>
  Array.from({ length: n }, (_, i) => nth(i + offset));

/** A coordinator's listing: keys numbered 1, 2, … in the order they came, pages as the route's. */
class FakeListing {
  epoch = 'epoch-1';
  keys: string[] = [];
  page = CACHE_DIRECTS_PAGE;
  calls: { epoch: string | undefined; since: number }[] = [];
  fetch: FetchDirects = (epoch, since) => {
    this.calls.push({ epoch, since });
    return Promise.resolve(this.answer(epoch, since));
  };

  answer(epoch: string | undefined, since: number): unknown {
    const reset = epoch !== this.epoch || since > this.keys.length;
    const from = reset ? 0 : since;
    const slice = this.keys.slice(from, from + this.page);
    return {
      epoch: this.epoch,
      reset,
      prefixes: Buffer.concat(slice.map((k) => Buffer.from(k.slice(0, 8), 'hex'))).toString(
        'base64',
      ),
      next: from + slice.length,
      more: from + slice.length < this.keys.length,
      count: this.keys.length,
    };
  }
}

/** A full first page of a listing with more to come, as the route writes it. */
function fullPage(): ReturnType<typeof directsView> {
  return directsView({
    epoch: 'e',
    reset: true,
    prefixes: many(CACHE_DIRECTS_PAGE).map((k) => k.slice(0, 8)),
    next: CACHE_DIRECTS_PAGE,
    more: true,
    count: CACHE_DIRECTS_PAGE + 1,
  });
}

function clock(): { now: () => number; advance(ms: number): void } {
  let t = 1_000_000;
  return { now: () => t, advance: (ms) => (t += ms) };
}

async function update(list: DirectKeys, fetch: FetchDirects): Promise<void> {
  list.refresh(fetch);
  await list.updating;
}

describe('the list of the shared cache’s direct keys', () => {
  it('says nothing before it has heard the coordinator, then lacks only the keys not listed', async () => {
    const c = clock();
    const listing = new FakeListing();
    listing.keys = ['a', 'b', 'c', 'd', 'e', 'f', 'g'].map(key);
    const list = new DirectKeys({ now: c.now });
    assert.equal(list.lacks(key('zzz')), false, 'not heard yet: every key is looked up');
    await update(list, listing.fetch);
    assert.deepEqual(listing.calls, [{ epoch: undefined, since: 0 }]);
    assert.equal(list.size, 7);
    for (const k of listing.keys) assert.equal(list.lacks(k), false);
    assert.equal(list.lacks(key('zzz')), true);
    assert.equal(list.lacks('not-a-key'), false);
  });

  it('takes full pages one after the other, as the route gives them', async () => {
    const c = clock();
    const listing = new FakeListing();
    listing.keys = many(2 * CACHE_DIRECTS_PAGE + 5);
    const list = new DirectKeys({ now: c.now });
    await update(list, listing.fetch);
    assert.deepEqual(listing.calls, [
      { epoch: undefined, since: 0 },
      { epoch: 'epoch-1', since: CACHE_DIRECTS_PAGE },
      { epoch: 'epoch-1', since: 2 * CACHE_DIRECTS_PAGE },
    ]);
    assert.equal(list.size, listing.keys.length);
    assert.equal(list.lacks(nth(0)), false);
    assert.equal(list.lacks(nth(2 * CACHE_DIRECTS_PAGE + 4)), false);
    assert.equal(list.lacks(nth(2 * CACHE_DIRECTS_PAGE + 5)), true);
    // A full page as the route writes it passes the client's check of answers.
    const full = fullPage();
    assert.equal(checkAnswer(cacheDirectsAnswer, full, 'page').prefixes, full.prefixes);
  });

  it('goes on after a restart whose first page ends at the number it had heard', async () => {
    const c = clock();
    const listing = new FakeListing();
    listing.keys = many(CACHE_DIRECTS_PAGE);
    const list = new DirectKeys({ now: c.now });
    await update(list, listing.fetch);
    listing.epoch = 'epoch-2';
    listing.keys = many(CACHE_DIRECTS_PAGE + 2, 1_000_000);
    c.advance(DIRECTS_REFRESH_MS);
    await update(list, listing.fetch);
    assert.equal(list.lacks(nth(1_000_000 + CACHE_DIRECTS_PAGE + 1)), false, 'heard');
    assert.equal(list.lacks(nth(0)), true, 'the old numbering’s keys are gone');
  });

  it('asks a bounded number of pages of a coordinator that keeps starting over', async () => {
    const c = clock();
    const list = new DirectKeys({ now: c.now, maxKeys: 2 * CACHE_DIRECTS_PAGE });
    const full = fullPage();
    let asked = 0;
    await update(list, () => {
      asked++;
      return Promise.resolve({ ...full, epoch: `e${asked % 2}` });
    });
    assert.equal(asked, 4, 'the pages 2 × 65,536 keys make, and two more');
    assert.equal(list.lacks(key('x')), false, 'no list');
  });

  it('says nothing once its last update is older than the trust window', async () => {
    const c = clock();
    const listing = new FakeListing();
    const list = new DirectKeys({ now: c.now });
    await update(list, listing.fetch);
    assert.equal(list.lacks(key('x')), true);
    c.advance(DIRECTS_TRUST_MS + 1);
    assert.equal(list.lacks(key('x')), false);
    await update(list, listing.fetch);
    assert.equal(list.lacks(key('x')), true, 'fresh again');
  });

  it('asks again only after the refresh interval, one update at a time, for what came since', async () => {
    const c = clock();
    const listing = new FakeListing();
    listing.keys = [key('a')];
    const list = new DirectKeys({ now: c.now });
    list.refresh(listing.fetch);
    list.refresh(listing.fetch);
    await list.updating;
    assert.equal(listing.calls.length, 1, 'one update at a time');
    listing.keys.push(key('b'), key('c'));
    list.refresh(listing.fetch);
    assert.equal(list.updating, undefined, 'fresh: no request');
    assert.equal(list.lacks(key('b')), true, 'not heard yet');
    c.advance(DIRECTS_REFRESH_MS);
    await update(list, listing.fetch);
    assert.deepEqual(listing.calls.at(-1), { epoch: 'epoch-1', since: 1 });
    assert.equal(list.lacks(key('b')), false);
    assert.equal(list.lacks(key('c')), false);
    assert.equal(list.size, 3);
  });

  it('keeps the keys this process stores, across an update from the first', async () => {
    const c = clock();
    const listing = new FakeListing();
    listing.keys = [key('a')];
    const list = new DirectKeys({ now: c.now });
    await update(list, listing.fetch);
    list.add(key('mine'));
    assert.equal(list.lacks(key('mine')), false);
    // The coordinator restarted: another numbering, and the list starts over.
    listing.epoch = 'epoch-2';
    listing.keys = [key('other')];
    c.advance(DIRECTS_REFRESH_MS);
    await update(list, listing.fetch);
    assert.deepEqual(listing.calls.at(-1), { epoch: 'epoch-1', since: 1 });
    assert.equal(list.lacks(key('other')), false);
    assert.equal(list.lacks(key('mine')), false, 'what it stored stays on');
    assert.equal(list.lacks(key('a')), true, 'the old numbering’s keys are gone');
  });

  it('starts over when the numbering changes in the middle of an update', async () => {
    const c = clock();
    const listing = new FakeListing();
    listing.keys = many(CACHE_DIRECTS_PAGE + 3);
    const list = new DirectKeys({ now: c.now });
    let calls = 0;
    await update(list, (epoch, since) => {
      calls++;
      if (calls === 2) {
        listing.epoch = 'epoch-2';
        listing.keys = ['p', 'q'].map(key);
      }
      return listing.fetch(epoch, since);
    });
    assert.equal(list.size, 2);
    assert.equal(list.lacks(nth(0)), true);
    assert.equal(list.lacks(key('p')), false);
    assert.equal(list.lacks(key('q')), false);
  });

  it('leaves the list as it was when an answer is not a page, and waits before asking again', async () => {
    const bad: unknown[] = [
      { nope: true },
      { epoch: 'e', reset: true, prefixes: 'AAA=', next: 1, more: false, count: 1 }, // 2 bytes
      { epoch: 'e', reset: true, prefixes: '', next: 0, more: true, count: 9 }, // never moves on
      { epoch: 'e', reset: true, prefixes: '!!!!', next: 1, more: false, count: 1 },
      'not json at all',
    ];
    for (const answer of bad) {
      const c = clock();
      const listing = new FakeListing();
      const list = new DirectKeys({ now: c.now });
      await update(list, listing.fetch);
      c.advance(DIRECTS_REFRESH_MS);
      let asked = 0;
      const fetch: FetchDirects = () => {
        asked++;
        return Promise.resolve(answer);
      };
      await update(list, fetch);
      assert.equal(asked, 1);
      assert.equal(list.lacks(key('x')), true, `${JSON.stringify(answer)}: the list heard before`);
      list.refresh(fetch);
      assert.equal(list.updating, undefined, 'no request right after a failure');
      c.advance(DIRECTS_REFRESH_MS);
      await update(list, fetch);
      assert.equal(asked, 2);
      c.advance(DIRECTS_TRUST_MS);
      assert.equal(list.lacks(key('x')), false, 'and says nothing once it is old');
    }
  });

  it('refuses a page whose numbers go back: the list stays as it was', async () => {
    const c = clock();
    const listing = new FakeListing();
    listing.keys = ['a', 'b'].map(key);
    const list = new DirectKeys({ now: c.now });
    await update(list, listing.fetch);
    c.advance(DIRECTS_REFRESH_MS);
    await update(list, () =>
      Promise.resolve({
        epoch: 'epoch-1',
        reset: false,
        prefixes: Buffer.from(key('z').slice(0, 8), 'hex').toString('base64'),
        next: 1,
        more: false,
        count: 3,
      }),
    );
    assert.equal(list.lacks(key('z')), true);
    assert.equal(list.size, 2);
  });

  it('looks every key up for a while when the coordinator has no such route', async () => {
    const c = clock();
    const list = new DirectKeys({ now: c.now });
    let asked = 0;
    const fetch: FetchDirects = () => {
      asked++;
      return Promise.reject(new MusterError('NOT_FOUND', 'no route'));
    };
    await update(list, fetch);
    assert.equal(list.lacks(key('x')), false);
    c.advance(DIRECTS_OFF_MS - 1);
    list.refresh(fetch);
    assert.equal(asked, 1);
    c.advance(1);
    await update(list, fetch);
    assert.equal(asked, 2);
  });

  it('holds no list for a coordinator with more keys than its bound', async () => {
    const c = clock();
    const listing = new FakeListing();
    listing.keys = ['a', 'b', 'c', 'd', 'e'].map(key);
    const list = new DirectKeys({ now: c.now, maxKeys: 4 });
    await update(list, listing.fetch);
    assert.equal(list.size, 0);
    assert.equal(list.lacks(key('x')), false, 'every key looked up');
    c.advance(DIRECTS_REFRESH_MS);
    list.refresh(listing.fetch);
    assert.equal(list.updating, undefined, 'not asked again for a while');
  });

  it('starts from the first when it holds far more than the coordinator has (keys went)', async () => {
    const c = clock();
    const listing = new FakeListing();
    listing.keys = many(40_000);
    const list = new DirectKeys({ now: c.now });
    await update(list, listing.fetch);
    // Evicted: the coordinator has 3 keys now; its numbers go on.
    listing.answer = (_epoch, since) => ({
      epoch: 'epoch-1',
      reset: false,
      prefixes: '',
      next: since,
      more: false,
      count: 3,
    });
    c.advance(DIRECTS_REFRESH_MS);
    await update(list, listing.fetch);
    c.advance(DIRECTS_REFRESH_MS);
    await update(list, listing.fetch);
    assert.equal(listing.calls.at(-1)?.epoch, undefined, 'asked from the first');
  });
});
