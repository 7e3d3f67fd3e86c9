// Runs every compiled test file (dist/test/**/*.test.js) with Node's test runner: unit tests
// first, then end-to-end tests that start real processes. Extra arguments filter file names.
//
// End-to-end tests run with TLS on every link: this makes one self-signed certificate for the
// loopback addresses, passes its files in MUSTER_TEST_TLS_CERT / MUSTER_TEST_TLS_KEY, and trusts
// it through NODE_EXTRA_CA_CERTS (read by Node at start, so it must be set before the tests run).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
// Built by `npm run build`, which `npm test` runs first.
import { selfSignedCertificate } from '../dist/src/common/self-signed.js';

const root = join(import.meta.dirname, '..');
const filters = process.argv.slice(2);

function find(dir) {
  let out = [];
  let names;
  try {
    names = readdirSync(dir).sort();
  } catch {
    return out;
  }
  for (const name of names) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out = out.concat(find(path));
    else if (name.endsWith('.test.js')) out.push(path);
  }
  return out;
}

const tlsDir = mkdtempSync(join(tmpdir(), 'muster-test-tls-'));
const pems = await selfSignedCertificate({
  commonName: 'muster-test',
  dns: ['localhost'],
  // 10.250.77.1: the root side of the veth pair test/helpers/netns.ts makes for agents that
  // dial out from a namespace of their own.
  ips: ['127.0.0.1', '127.0.0.2', '127.0.0.3', '10.250.77.1'],
  notAfter: new Date(Date.now() + 7 * 86_400_000),
});
const certFile = join(tlsDir, 'cert.pem');
const keyFile = join(tlsDir, 'key.pem');
writeFileSync(certFile, pems.cert);
writeFileSync(keyFile, pems.key, { mode: 0o600 });
const env = {
  // Password hashes at the old scrypt cost (2^14, ~0.1 s instead of ~1 s at the default 2^17):
  // the suite logs in hundreds of times. Tests that need the real cost pass --password-cost.
  MUSTER_PASSWORD_COST: '14',
  ...process.env,
  MUSTER_TEST_TLS_CERT: certFile,
  MUSTER_TEST_TLS_KEY: keyFile,
  NODE_EXTRA_CA_CERTS: certFile,
};

let failed = false;
for (const suite of ['unit', 'e2e']) {
  const files = find(join(root, 'dist/test', suite)).filter(
    (f) => filters.length === 0 || filters.some((x) => relative(root, f).includes(x)),
  );
  if (files.length === 0) continue;
  const result = spawnSync(
    process.execPath,
    ['--test', '--test-concurrency=2', '--test-timeout=600000', ...files],
    { stdio: 'inherit', cwd: root, env },
  );
  if (result.status !== 0) failed = true;
}
rmSync(tlsDir, { recursive: true, force: true });
process.exit(failed ? 1 : 0);
