/**
 * Addresses as limits count them: one host usually owns a whole IPv6 /64, so that is counted as
 * one address; IPv4-mapped IPv6 counts as the IPv4 address. Shared by the agent's connection caps
 * and the coordinator's login limits.
 */
import { isIP, isIPv6 } from 'node:net';

/** The IPv4 address inside an IPv4-mapped IPv6 one (`::ffff:a.b.c.d`), else undefined. */
function mappedIPv4(address: string): string | undefined {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  return mapped?.[1];
}

/** `a:b:c:d::/64` for an IPv6 address (zone dropped, groups without leading zeros). */
function slash64(address: string): string {
  const [head = '', tail] = address.toLowerCase().split('::');
  const headGroups = head === '' ? [] : head.split(':');
  const tailGroups = tail === undefined || tail === '' ? [] : tail.split(':');
  const zeros =
    tail === undefined ? [] : Array<string>(8 - headGroups.length - tailGroups.length).fill('0');
  return `${[...headGroups, ...zeros, ...tailGroups]
    .slice(0, 4)
    .map((g) => g.replace(/^0+(?=.)/, ''))
    .join(':')}::/64`;
}

/** One source as the agent's caps count it: an IPv4 address, or an IPv6 /64. */
export function addressKey(address: string): string {
  const v4 = mappedIPv4(address);
  if (v4 !== undefined) return v4;
  const bare = address.replace(/%.*$/, '');
  return isIPv6(bare) ? slash64(bare) : address;
}

/** A block of addresses as login limits count it: an IPv4 /24, or an IPv6 /64. */
export function addressBlock(address: string): string {
  const key = addressKey(address);
  const v4 = /^(\d+)\.(\d+)\.(\d+)\.\d+$/.exec(key);
  return v4 ? `${v4[1]}.${v4[2]}.${v4[3]}.0/24` : key;
}

/** 127.0.0.0/8, ::1 and localhost: addresses only this machine can reach. */
export function isLoopbackHost(host: string): boolean {
  const bare = host.replace(/^\[(.*)\]$/, '$1').toLowerCase();
  if (bare === 'localhost' || bare === 'localhost.') return true;
  if (isIP(bare) === 4) return bare.startsWith('127.');
  if (isIP(bare) === 6) return bare === '::1' || bare === '0:0:0:0:0:0:0:1';
  return false;
}
