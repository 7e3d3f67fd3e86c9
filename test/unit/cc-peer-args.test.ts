/**
 * The pure part of the compile benchmark's peers (bench/cc-peer-args.ts, countCompiles in
 * bench/cc-projects.ts): daemon command lines, what distccd's and icecc-scheduler's logs say
 * about where compiles ran (lines recorded from distcc 3.4 and icecream 1.4 on this machine),
 * the namespace check, and per-round ratios.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  countsSince,
  distccCompiles,
  distccHosts,
  distccdArgs,
  icecreamDelays,
  icecreamJobsByServer,
  iceccdArgs,
  linkNames,
  netnsName,
  pathWithFirst,
  ratiosToMake,
} from '../../bench/cc-peer-args.js';
import { countCompiles } from '../../bench/cc-projects.js';

describe('compile benchmark peers: distcc', () => {
  it('names each daemon by address with one slot, never localhost', () => {
    assert.equal(distccHosts([3632, 40517]), '127.0.0.1:3632/1 127.0.0.1:40517/1');
  });

  it('runs distccd in the foreground with one job, only 127.0.0.1, nice 0 and a log', () => {
    const args = distccdArgs(3633, '/tmp/d/distccd.log');
    assert.ok(args.includes('--no-detach'));
    assert.deepEqual(args.slice(args.indexOf('--port'), args.indexOf('--port') + 2), [
      '--port',
      '3633',
    ]);
    assert.equal(args[args.indexOf('--allow') + 1], '127.0.0.1');
    assert.equal(args[args.indexOf('--listen') + 1], '127.0.0.1');
    assert.equal(args[args.indexOf('--jobs') + 1], '1');
    assert.equal(args[args.indexOf('--nice') + 1], '0');
    assert.ok(args.includes('--log-file=/tmp/d/distccd.log'));
  });

  it('counts the compiles a distccd log reports done, not failed or refused connections', () => {
    const log = [
      'distccd[6933] (dcc_job_summary) client: 127.0.0.1:55708 COMPILE_OK exit:0 sig:0 core:0 ret:0 time:1370ms x86_64-linux-gnu-gcc lua.c',
      'distccd[6933] x86_64-linux-gnu-gcc lua.c on localhost completed ok',
      'distccd[28419] (dcc_job_summary) client: 127.0.0.1:47922 OTHER exit:0 sig:0 core:0 ret:108 time:0ms ',
      'distccd[6935] (dcc_job_summary) client: 127.0.0.1:55710 COMPILE_OK exit:0 sig:0 core:0 ret:0 time:212ms x86_64-linux-gnu-gcc lzio.c',
      'distccd[6935] (dcc_job_summary) client: 127.0.0.1:55712 COMPILE_ERROR exit:1 sig:0 core:0 ret:1 time:80ms x86_64-linux-gnu-gcc bad.c',
      '',
    ].join('\n');
    assert.equal(distccCompiles(log), 2);
    assert.equal(distccCompiles(''), 0);
  });
});

describe('compile benchmark peers: icecream', () => {
  it('builds iceccd arguments for a build host and for the client daemon without slots', () => {
    const host = iceccdArgs(
      { name: 'ice1', port: 10246, slots: 1, noRemote: false, envDir: '/e1', logFile: '/l1' },
      8765,
    );
    assert.deepEqual(host.slice(0, 8), [
      '-s',
      '127.0.0.1:8765',
      '-p',
      '10246',
      '-N',
      'ice1',
      '-m',
      '1',
    ]);
    assert.ok(!host.includes('--no-remote'));
    assert.equal(host[host.indexOf('-b') + 1], '/e1');
    assert.equal(host[host.indexOf('-l') + 1], '/l1');
    assert.equal(host[host.indexOf('--nice') + 1], '0');
    const client = iceccdArgs(
      { name: 'client', port: 10245, slots: 0, noRemote: true, envDir: '/e0', logFile: '/l0' },
      8765,
    );
    assert.equal(client[client.indexOf('-m') + 1], '0');
    assert.ok(client.includes('--no-remote'));
  });

  it('counts finished jobs per host from the scheduler log, and the jobs of one build', () => {
    const first = [
      '[21864] 2026-12-06 04:13:24: No suitable host found, delaying',
      '[21864] 2026-12-06 04:13:34: BEGIN: 2 client=client(x86_64) server=ice2(x86_64)',
      '[21864] 2026-12-06 04:13:37: END 2 status=0 in=483215(25%) out=27456(100%) real=2652 user=495 sys=80 pfaults=5579 server=ice2',
      '[21864] 2026-12-06 04:13:38: END 1 status=0 in=343265(26%) out=26664(100%) real=3121 user=668 sys=73 pfaults=5449 server=ice1',
      '[21864] 2026-12-06 04:13:40: END 3 status=1 in=168298(26%) out=1184(100%) real=343 user=30 sys=30 pfaults=1585 server=ice2',
    ].join('\n');
    const before = icecreamJobsByServer(first);
    assert.deepEqual(
      [...before],
      [
        ['ice2', 2],
        ['ice1', 1],
      ],
    );
    const later = `${first}\n[21864] 2026-12-06 04:14:01: END 4 status=0 in=1(1%) out=1(100%) real=1 user=1 sys=1 pfaults=1 server=ice1\n`;
    assert.deepEqual([...countsSince(before, icecreamJobsByServer(later))], [['ice1', 1]]);
    assert.equal(icecreamJobsByServer('').size, 0);
    assert.equal(icecreamDelays(first), 1);
    assert.equal(icecreamDelays(''), 0);
  });

  it('reads the link names of `ip -o link show`, so a namespace with more than lo is refused', () => {
    assert.deepEqual(
      linkNames(
        '1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN mode DEFAULT group default qlen 1000\\    link/loopback 00:00:00:00:00:00 brd 00:00:00:00:00:00\n',
      ),
      ['lo'],
    );
    assert.deepEqual(
      linkNames(
        '1: lo: <LOOPBACK,UP> mtu 65536\n2: eth0@if7: <BROADCAST,MULTICAST,UP> mtu 1500\n3: wg0: <POINTOPOINT> mtu 1420\n',
      ),
      ['lo', 'eth0', 'wg0'],
    );
    assert.equal(netnsName(4242), 'muster-bench-4242');
  });
});

describe('compile benchmark peers: shared', () => {
  it('puts a masquerade directory first on PATH', () => {
    assert.equal(
      pathWithFirst('/usr/lib/distcc', '/usr/bin:/bin'),
      '/usr/lib/distcc:/usr/bin:/bin',
    );
    assert.equal(pathWithFirst('/usr/lib/icecc/bin', undefined), '/usr/lib/icecc/bin');
  });

  it('divides each round by the make of the same round, skipping rounds without both', () => {
    assert.deepEqual(ratiosToMake([1000, 2000, 4000], [1100, 1800, 4400]), [1.1, 0.9, 1.1]);
    assert.deepEqual(ratiosToMake([1000, undefined, 2000], [1500, 700, undefined]), [1.5]);
    assert.deepEqual(ratiosToMake([], [1000]), []);
  });

  it('counts compiler invocations with -c in make output, not links, archives or make lines', () => {
    const output = [
      "make[1]: Entering directory '/tmp/lua-5.4.4/src'",
      'gcc -std=gnu99 -O2 -Wall -Wextra -DLUA_COMPAT_5_3 -DLUA_USE_LINUX    -c -o lapi.o lapi.c',
      'gcc -std=gnu99 -O2 -Wall -Wextra -DLUA_COMPAT_5_3 -DLUA_USE_LINUX    -c -o lcode.o lcode.c',
      'ar rcu liblua.a lapi.o lcode.o',
      'gcc -std=gnu99 -o lua   lua.o liblua.a -lm -Wl,-E -ldl ',
      'g++ -O3 -g -pthread -Wall -Wextra -I. -c -o obj/re2/dfa.o re2/dfa.cc',
      'lcode.c:1:2: warning: something about -c',
    ].join('\n');
    assert.equal(countCompiles(output), 3);
  });
});
