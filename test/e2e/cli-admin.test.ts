/**
 * `muster users …` and `muster certificate …` against a real coordinator over TLS: adding users,
 * changing roles and passwords (a new password ends the user's tokens), the last admin kept,
 * one's own password, clear errors with exit code 2; showing the certificate, refusing a key from
 * another pair and replacing it, served at once to new connections.
 */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { cleanup, makeTempDir } from '../helpers/agent-process.js';
import { copyTestTls, makeCertificate, servedFingerprint } from '../helpers/certificates.js';
import { runCli, type CliResult } from '../helpers/cli.js';
import {
  ADMIN_PASSWORD,
  killCoordinators,
  startCoordinator,
  type StartedCoordinator,
} from '../helpers/coordinator-process.js';

let coordinator: StartedCoordinator;
let dir: string;

/** A CLI user: its own config dir (credentials), trusting what this test process trusts. */
async function cliUser(): Promise<NodeJS.ProcessEnv> {
  return {
    MUSTER_CONFIG_DIR: await makeTempDir('muster-cli-admin-'),
    MUSTER_URL: '',
    MUSTER_TOKEN: '',
    NODE_EXTRA_CA_CERTS: process.env.NODE_EXTRA_CA_CERTS,
  };
}

function muster(args: string[], env: NodeJS.ProcessEnv, input?: string): Promise<CliResult> {
  return runCli(args, { env, timeoutMs: 60_000, ...(input === undefined ? {} : { input }) });
}

async function logIn(env: NodeJS.ProcessEnv, user: string, password: string): Promise<CliResult> {
  return muster(
    ['login', coordinator.url, '--user', user, '--password-stdin'],
    env,
    `${password}\n`,
  );
}

before(async () => {
  dir = await makeTempDir('muster-cli-admin-');
  const files = await copyTestTls();
  coordinator = await startCoordinator({
    args: ['--tls-cert', files.certFile, '--tls-key', files.keyFile],
  });
});

after(async () => {
  await killCoordinators();
  await cleanup([dir]);
});

describe('muster users', () => {
  it('adds users, changes roles and passwords, and keeps the last admin', async () => {
    const admin = await cliUser();
    assert.equal((await logIn(admin, 'admin', ADMIN_PASSWORD)).code, 0);

    const added = await muster(
      ['users', 'add', 'vera', '--role', 'viewer', '--password-stdin'],
      admin,
      'vera-password-1\n',
    );
    assert.equal(added.code, 0, added.stderr);
    assert.equal(added.stdout, 'Added vera (viewer).\n');
    const listed = await muster(['users', 'list', '--json'], admin);
    assert.deepEqual(
      (JSON.parse(listed.stdout) as { name: string; role: string }[]).map((u) => [u.name, u.role]),
      [
        ['admin', 'admin'],
        ['vera', 'viewer'],
      ],
    );
    const table = await muster(['users', 'list'], admin);
    assert.match(table.stdout, /^NAME\s+ROLE\s+CREATED\nadmin\s+admin\s+.+\nvera\s+viewer\s+/);

    // A viewer cannot manage users; an admin can, from the next request on.
    const vera = await cliUser();
    assert.equal((await logIn(vera, 'vera', 'vera-password-1')).code, 0);
    const refused = await muster(['users', 'list'], vera);
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /needs an admin \[FORBIDDEN\]/);
    assert.equal(
      (await muster(['users', 'role', 'vera', 'admin'], admin)).stdout,
      'vera is now admin.\n',
    );
    assert.equal((await muster(['users', 'list'], vera)).code, 0);

    // A new password ends vera's token.
    const reset = await muster(
      ['users', 'password', 'vera', '--password-stdin'],
      admin,
      'vera-password-2\n',
    );
    assert.equal(reset.code, 0, reset.stderr);
    const ended = await muster(['status'], vera);
    assert.equal(ended.code, 2);
    assert.match(ended.stderr, /log in again/);
    assert.equal((await logIn(vera, 'vera', 'vera-password-1')).code, 2);
    assert.equal((await logIn(vera, 'vera', 'vera-password-2')).code, 0);

    // Wrong input says what to do.
    const boss = await muster(
      ['users', 'add', 'x', '--role', 'boss', '--password-stdin'],
      admin,
      'x-password-1\n',
    );
    assert.equal(boss.code, 2);
    assert.match(boss.stderr, /role "boss": give admin or viewer/);
    const short = await muster(['users', 'add', 'y', '--password-stdin'], admin, 'short\n');
    assert.equal(short.code, 2);
    assert.match(short.stderr, /at least 8 characters/);
    const nobody = await muster(['users', 'role', 'nobody', 'admin'], admin);
    assert.equal(nobody.code, 2);
    assert.match(nobody.stderr, /no user nobody \[NOT_FOUND\]/);

    // The last admin stays one.
    assert.equal((await muster(['users', 'remove', 'vera'], admin)).stdout, 'Removed vera.\n');
    const last = await muster(['users', 'role', 'admin', 'viewer'], admin);
    assert.equal(last.code, 2);
    assert.match(
      last.stderr,
      /admin is the only admin: make another user an admin .*\[LAST_ADMIN\]/,
    );
  });

  it("changes one's own password with the current one", async () => {
    const admin = await cliUser();
    assert.equal((await logIn(admin, 'admin', ADMIN_PASSWORD)).code, 0);
    const add = await muster(
      ['users', 'add', 'olga', '--password-stdin'],
      admin,
      'olga-password-1\n',
    );
    assert.equal(add.code, 0, add.stderr);
    const olga = await cliUser();
    assert.equal((await logIn(olga, 'olga', 'olga-password-1')).code, 0);
    const wrong = await muster(
      ['users', 'passwd', '--password-stdin'],
      olga,
      'not-it\nolga-password-2\n',
    );
    assert.equal(wrong.code, 2);
    assert.match(wrong.stderr, /the current password is wrong.*\[WRONG_PASSWORD\]/);
    const oneLine = await muster(
      ['users', 'passwd', '--password-stdin'],
      olga,
      'olga-password-1\n',
    );
    assert.equal(oneLine.code, 2);
    assert.match(oneLine.stderr, /one per line/);
    const changed = await muster(
      ['users', 'passwd', '--password-stdin'],
      olga,
      'olga-password-1\nolga-password-2\n',
    );
    assert.equal(changed.code, 0, changed.stderr);
    // The token that changed it stays; the new password logs in, the old one does not.
    assert.equal((await muster(['status'], olga)).code, 0);
    const other = await cliUser();
    assert.equal((await logIn(other, 'olga', 'olga-password-1')).code, 2);
    assert.equal((await logIn(other, 'olga', 'olga-password-2')).code, 0);
  });
});

describe('muster builds list --search', () => {
  it('finds builds by name, user or number', async () => {
    const admin = await cliUser();
    assert.equal((await logIn(admin, 'admin', ADMIN_PASSWORD)).code, 0);
    // No agent here: the builds stay queued, which is all a listing needs.
    for (const name of ['nightly-report', 'release']) {
      const made = await coordinator.api('POST', '/builds', {
        plan: `name: ${name}\ntasks:\n  x:\n    run: "true"\n`,
      });
      assert.equal(made.status, 201, JSON.stringify(made.body));
    }
    const found = await muster(['builds', 'list', '--search', 'NIGHTLY', '--json'], admin);
    assert.equal(found.code, 0, found.stderr);
    assert.deepEqual(
      (JSON.parse(found.stdout) as { name: string }[]).map((b) => b.name),
      ['nightly-report'],
    );
    const none = await muster(['builds', 'list', '--search', 'no such build', '--json'], admin);
    assert.deepEqual(JSON.parse(none.stdout), []);
  });
});

describe('muster certificate', () => {
  it('shows the certificate, refuses a key of another pair, and replaces it without a restart', async () => {
    const admin = await cliUser();
    assert.equal((await logIn(admin, 'admin', ADMIN_PASSWORD)).code, 0);
    const original = await servedFingerprint(coordinator.url);
    const shown = await muster(['certificate', 'show'], admin);
    assert.equal(shown.code, 0, shown.stderr);
    assert.match(shown.stdout, new RegExp(`Fingerprint:  ${original}`));
    assert.match(shown.stdout, /Names: .*127\.0\.0\.1/);

    const mine = await makeCertificate({ dns: ['localhost'] });
    const theirs = await makeCertificate();
    await writeFile(join(dir, 'new.pem'), mine.cert);
    await writeFile(join(dir, 'new.key'), mine.key);
    await writeFile(join(dir, 'other.key'), theirs.key);
    const mismatch = await muster(
      ['certificate', 'replace', '--cert', join(dir, 'new.pem'), '--key', join(dir, 'other.key')],
      admin,
    );
    assert.equal(mismatch.code, 2);
    assert.match(mismatch.stderr, /\[CERT_KEY_MISMATCH\]/);
    assert.equal(await servedFingerprint(coordinator.url), original);
    const missing = await muster(
      ['certificate', 'replace', '--cert', join(dir, 'absent.pem'), '--key', join(dir, 'new.key')],
      admin,
    );
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /--cert .*absent\.pem: ENOENT/);

    const replaced = await muster(
      [
        'certificate',
        'replace',
        '--cert',
        join(dir, 'new.pem'),
        '--key',
        join(dir, 'new.key'),
        '--json',
      ],
      admin,
    );
    assert.equal(replaced.code, 0, replaced.stderr);
    const result = JSON.parse(replaced.stdout) as {
      certificate: { fingerprint256: string };
      backup: null;
    };
    assert.equal(result.certificate.fingerprint256, mine.fingerprint);
    assert.equal(result.backup, null);
    assert.equal(await servedFingerprint(coordinator.url), mine.fingerprint);
    // A client told to trust the new certificate reads it back.
    await writeFile(join(dir, 'trust.pem'), mine.cert);
    const after = await muster(['certificate', 'show', '--json'], {
      ...admin,
      NODE_EXTRA_CA_CERTS: join(dir, 'trust.pem'),
    });
    assert.equal(after.code, 0, after.stderr);
    assert.equal(
      (JSON.parse(after.stdout) as { fingerprint256: string }).fingerprint256,
      mine.fingerprint,
    );
  });
});
