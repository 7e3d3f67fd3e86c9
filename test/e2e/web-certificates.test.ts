/**
 * Admin › Certificates in a real browser (Chromium, headless) against a real coordinator over
 * TLS: a key from another pair, an expired certificate and one for another host name are refused
 * with clear errors and change nothing; a good certificate is served to new connections at once,
 * without a restart, and still after one. The coordinator runs on a copy of the test certificate
 * in this test's temp dir, which the upload overwrites. A plain HTTP coordinator explains how
 * to serve HTTPS and refuses uploads. MUSTER_SCREENSHOTS=DIR saves the page.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { cleanup } from '../helpers/agent-process.js';
import { launchBrowser, logIn, newPage as openPage, shot } from '../helpers/browser.js';
import {
  apiWithCa,
  copyTestTls,
  makeCertificate,
  servedFingerprint,
  type TestCertificate,
} from '../helpers/certificates.js';
import {
  ADMIN_PASSWORD,
  killCoordinators,
  restartCoordinator,
  startCoordinator,
  type StartedCoordinator,
} from '../helpers/coordinator-process.js';

let browser: Browser;
let coordinator: StartedCoordinator;
let files: { dir: string; certFile: string; keyFile: string };
let original: string;

const newPage = () => openPage(browser);

async function openCertificates(page: Page, url: string): Promise<void> {
  await logIn(page, url, ADMIN_PASSWORD);
  await page.getByRole('link', { name: 'Certificates' }).click();
  await page.getByTestId('fingerprint').waitFor();
}

async function upload(page: Page, cert: string, key: string): Promise<void> {
  await page.getByLabel('Certificate (PEM)').fill(cert);
  await page.getByLabel('Private key (PEM)').fill(key);
  await page.getByRole('button', { name: 'Upload and use' }).click();
}

async function unchanged(): Promise<void> {
  const view = await coordinator.api<{ fingerprint256: string }>('GET', '/certificate');
  assert.equal(view.body.fingerprint256, original);
  assert.equal(await servedFingerprint(coordinator.url), original);
  assert.equal(
    await readFile(files.certFile, 'utf8'),
    await readFile(process.env.MUSTER_TEST_TLS_CERT!, 'utf8'),
  );
  assert.equal(existsSync(`${files.certFile}.previous`), false);
}

before(async () => {
  browser = await launchBrowser();
  files = await copyTestTls();
  coordinator = await startCoordinator({
    args: ['--tls-cert', files.certFile, '--tls-key', files.keyFile],
  });
  original = await servedFingerprint(coordinator.url);
});

after(async () => {
  await browser?.close();
  await killCoordinators();
  await cleanup();
});

describe('Admin › Certificates', () => {
  it('shows the current certificate, and refuses a key from another pair, changing nothing', async () => {
    const page = await newPage();
    await openCertificates(page, coordinator.url);
    assert.equal(await page.getByTestId('fingerprint').textContent(), original);
    assert.match((await page.getByTestId('names').textContent()) ?? '', /localhost.*127\.0\.0\.1/);
    const mine = await makeCertificate();
    const theirs = await makeCertificate();
    await upload(page, mine.cert, theirs.key);
    await page
      .getByRole('alert')
      .filter({ hasText: /Not replaced: the private key does not belong to this certificate/ })
      .waitFor();
    await unchanged();
    await page.context().close();
  });

  it('refuses an expired certificate and one for another host name, saying why', async () => {
    const page = await newPage();
    await openCertificates(page, coordinator.url);
    const expired = await makeCertificate({
      notBefore: new Date(Date.now() - 10 * 86_400_000),
      notAfter: new Date(Date.now() - 86_400_000),
    });
    await upload(page, expired.cert, expired.key);
    await page
      .getByRole('alert')
      .filter({ hasText: /the certificate expired on \d{4}-\d\d-\d\d.*renew it/ })
      .waitFor();
    const elsewhere = await makeCertificate({ dns: ['ci.example.com'], ips: [] });
    await upload(page, elsewhere.cert, elsewhere.key);
    await page
      .getByRole('alert')
      .filter({
        hasText: /does not cover 127\.0\.0\.1, the name clients use.*covers ci\.example\.com/,
      })
      .waitFor();
    await unchanged();
    await page.context().close();
  });

  let good: TestCertificate;
  it('uses a good certificate at once for new connections, and after a restart', async () => {
    const page = await newPage();
    await openCertificates(page, coordinator.url);
    good = await makeCertificate({ dns: ['localhost'], ips: ['127.0.0.1'] });
    await upload(page, good.cert, good.key);
    await page.getByRole('status').filter({ hasText: 'The new certificate is in use' }).waitFor();
    await page.getByTestId('fingerprint').filter({ hasText: good.fingerprint }).waitFor();
    await shot(page, 'certificates');
    await page.context().close();

    // No restart: a new TLS connection gets the new certificate.
    assert.equal(await servedFingerprint(coordinator.url), good.fingerprint);
    // The files: the new pair in place (key 0600), the old pair kept as .previous.
    assert.equal((await readFile(files.certFile, 'utf8')).trim(), good.cert.trim());
    assert.equal((await readFile(files.keyFile, 'utf8')).trim(), good.key.trim());
    assert.equal((await stat(files.keyFile)).mode & 0o777, 0o600);
    assert.equal(
      await readFile(`${files.certFile}.previous`, 'utf8'),
      await readFile(process.env.MUSTER_TEST_TLS_CERT!, 'utf8'),
    );
    assert.equal((await stat(`${files.keyFile}.previous`)).mode & 0o777, 0o600);

    await coordinator.stop();
    coordinator = await restartCoordinator(coordinator, {
      login: false,
      args: ['--tls-cert', files.certFile, '--tls-key', files.keyFile],
    });
    assert.equal(await servedFingerprint(coordinator.url), good.fingerprint);
    // Clients that trust the new certificate (only it) talk to the restarted coordinator.
    const login = await apiWithCa<{ token: string }>(
      coordinator.url,
      good.cert,
      undefined,
      'POST',
      '/login',
      {
        user: 'admin',
        password: ADMIN_PASSWORD,
      },
    );
    assert.equal(login.status, 200, JSON.stringify(login.body));
    const view = await apiWithCa<{ fingerprint256: string }>(
      coordinator.url,
      good.cert,
      login.body.token,
      'GET',
      '/certificate',
    );
    assert.equal(view.body.fingerprint256, good.fingerprint);
  });

  it('explains on a plain HTTP coordinator how to serve HTTPS, and refuses an upload there', async () => {
    const plain = await startCoordinator();
    const view = await plain.api<{ tls: boolean; message: string }>('GET', '/certificate');
    assert.equal(view.body.tls, false);
    const refused = await plain.api<{ error: { code: string; message: string } }>(
      'PUT',
      '/certificate',
      { certificate: good.cert, key: good.key },
    );
    assert.equal(refused.status, 409);
    assert.equal(refused.body.error.code, 'TLS_NOT_ENABLED');
    assert.match(refused.body.error.message, /--tls-cert FILE --tls-key FILE/);
    const page = await newPage();
    await page.goto(`${plain.url}/`);
    await page.getByLabel('User').fill('admin');
    await page.getByLabel('Password').fill(ADMIN_PASSWORD);
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.getByRole('link', { name: 'Certificates' }).click();
    await page
      .getByTestId('plain-http')
      .filter({ hasText: '--tls-cert FILE --tls-key FILE' })
      .waitFor();
    assert.equal(await page.getByRole('button', { name: 'Upload and use' }).count(), 0);
    await page.context().close();
    // An oversized upload is refused before it is read.
    const big = await plain.api<{ error: { code: string } }>('PUT', '/certificate', {
      certificate: 'A'.repeat(300 * 1024),
      key: 'k',
    });
    assert.equal(big.status, 413);
    assert.equal(big.body.error.code, 'PAYLOAD_TOO_LARGE');
  });
});
