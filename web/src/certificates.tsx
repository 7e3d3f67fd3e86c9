/**
 * Admin › Certificates: the TLS certificate this coordinator serves, and (admins, on the
 * primary) replacing it with an uploaded certificate and key, checked by the server first. New
 * connections get the new one at once; the files are replaced too, so a restart keeps it.
 */
import { useEffect, useState } from 'preact/hooks';
import { getCertificate, putCertificate, type CertificateView, type StatusView } from './api.js';
import { Notice, type NoticeText } from './notice.js';

const DAY_MS = 86_400_000;

function validity(validTo: string): string {
  const days = Math.floor((Date.parse(validTo) - Date.now()) / DAY_MS);
  if (days < 0) return 'expired';
  return days === 1 ? '1 day left' : `${days} days left`;
}

export function Certificates({
  status,
  isAdmin,
}: {
  status: StatusView | undefined;
  isAdmin: boolean;
}) {
  const [current, setCurrent] = useState<CertificateView>();
  const [error, setError] = useState<string>();
  const load = (): void => {
    getCertificate()
      .then(setCurrent)
      .catch((err: unknown) => setError((err as Error).message));
  };
  useEffect(load, []);
  return (
    <>
      <h1>Admin › Certificates</h1>
      <Notice notice={error} />
      <section aria-labelledby="current-title">
        <h2 id="current-title">Current certificate</h2>
        {current === undefined ? <p class="muted">Loading…</p> : <Current view={current} />}
      </section>
      {current?.tls ? <Upload status={status} isAdmin={isAdmin} onReplaced={load} /> : null}
    </>
  );
}

function Current({ view }: { view: CertificateView }) {
  if (!view.tls) {
    return (
      <p data-testid="plain-http">
        This coordinator serves plain HTTP, so there is no certificate to show or replace. To serve
        HTTPS, restart it with <code>--tls-cert FILE --tls-key FILE</code> (a running coordinator
        cannot switch from HTTP to HTTPS); then certificates can be replaced here without a restart.
      </p>
    );
  }
  const names = [...view.subjectAltName.dns, ...view.subjectAltName.ips];
  return (
    <dl class="facts" data-testid="certificate">
      <dt>Subject</dt>
      <dd>{view.subject.replace(/\n/g, ', ')}</dd>
      <dt>Names it covers</dt>
      <dd data-testid="names">
        {names.length > 0 ? names.join(', ') : 'none (no subjectAltName)'}
      </dd>
      <dt>Issuer</dt>
      <dd>
        {view.selfSigned ? 'self-signed' : view.issuer.replace(/\n/g, ', ')}
        {view.chainLength > 1
          ? ` (with ${view.chainLength - 1} intermediate${view.chainLength > 2 ? 's' : ''})`
          : ''}
      </dd>
      <dt>Valid from</dt>
      <dd>{new Date(view.validFrom).toLocaleString()}</dd>
      <dt>Valid to</dt>
      <dd data-testid="valid-to">
        {new Date(view.validTo).toLocaleString()} ({validity(view.validTo)})
      </dd>
      <dt>SHA-256 fingerprint</dt>
      <dd>
        <code class="small" data-testid="fingerprint">
          {view.fingerprint256}
        </code>
      </dd>
      <dt>Files</dt>
      <dd>
        <code class="small">{view.files.certificate}</code>,{' '}
        <code class="small">{view.files.key}</code>
      </dd>
    </dl>
  );
}

function Upload({
  status,
  isAdmin,
  onReplaced,
}: {
  status: StatusView | undefined;
  isAdmin: boolean;
  onReplaced: () => void;
}) {
  const [certificate, setCertificate] = useState('');
  const [key, setKey] = useState('');
  const [busy, setBusy] = useState(false);
  const [messages, setMessages] = useState<NoticeText[]>([]);
  const onBackup = status !== undefined && status.role !== 'primary';
  const why = onBackup
    ? `This coordinator is a backup: its certificate is replaced on its own machine (--tls-cert and --tls-key, then a restart); the primary's on the primary (${status.primary?.url ?? 'unknown'}).`
    : !isAdmin
      ? 'Replacing the certificate needs an admin; you are logged in as a viewer.'
      : undefined;
  const canEdit = why === undefined && status !== undefined;
  return (
    <section aria-labelledby="upload-title">
      <h2 id="upload-title">Replace the certificate</h2>
      <p class="muted">
        Upload the new certificate (PEM; the server certificate first, then any intermediates) and
        its private key (PEM, without a passphrase). The coordinator checks that they belong
        together, are valid now and cover the name you reached it by, then uses them for new
        connections at once and writes them over its certificate files (the old ones are kept as{' '}
        <code>.previous</code>).
      </p>
      {why ? <p data-testid="upload-disabled">{why}</p> : null}
      <form
        class="stack"
        onSubmit={(e) => {
          e.preventDefault();
          setBusy(true);
          setMessages([]);
          putCertificate(certificate, key)
            .then((result) => {
              const done: NoticeText = {
                error: false,
                text: `The new certificate is in use (fingerprint ${result.certificate.fingerprint256}): new connections get it; the files are replaced, so a restart keeps it.`,
              };
              const backup = result.backup;
              setMessages(
                backup
                  ? [done, { error: !backup.confirmed, text: `Backup: ${backup.message}.` }]
                  : [done],
              );
              setCertificate('');
              setKey('');
              onReplaced();
            })
            .catch((err: unknown) =>
              setMessages([
                {
                  error: true,
                  text: `Not replaced: ${(err as Error).message}. The current certificate stays in use.`,
                },
              ]),
            )
            .finally(() => setBusy(false));
        }}
      >
        <fieldset disabled={!canEdit || busy}>
          <PemField
            what="Certificate"
            accept=".pem,.crt,.cer,text/plain"
            rows={8}
            placeholder="-----BEGIN CERTIFICATE-----"
            value={certificate}
            onChange={setCertificate}
            onError={(text) => setMessages([{ error: true, text }])}
          />
          <PemField
            what="Private key"
            fileLabel="Key file"
            accept=".pem,.key,text/plain"
            rows={6}
            placeholder="-----BEGIN PRIVATE KEY-----"
            value={key}
            onChange={setKey}
            onError={(text) => setMessages([{ error: true, text }])}
          />
          <button type="submit">{busy ? 'Checking…' : 'Upload and use'}</button>
        </fieldset>
        {messages.map((m) => (
          <Notice key={m.text} notice={m} />
        ))}
      </form>
    </section>
  );
}

/** A PEM, chosen as a file (read into the text area) or pasted. */
function PemField({
  what,
  fileLabel = `${what} file`,
  accept,
  rows,
  placeholder,
  value,
  onChange,
  onError,
}: {
  what: string;
  fileLabel?: string;
  accept: string;
  rows: number;
  placeholder: string;
  value: string;
  onChange: (text: string) => void;
  onError: (text: string) => void;
}) {
  return (
    <>
      <label>
        {fileLabel}
        <input
          type="file"
          accept={accept}
          onChange={(e) => {
            const file = e.currentTarget.files?.[0];
            if (!file) return;
            file
              .text()
              .then(onChange)
              .catch((err: unknown) =>
                onError(`Cannot read ${file.name}: ${(err as Error).message}`),
              );
          }}
        />
      </label>
      <label>
        {what} (PEM)
        <textarea
          rows={rows}
          value={value}
          placeholder={placeholder}
          onInput={(e) => onChange(e.currentTarget.value)}
          required
        />
      </label>
    </>
  );
}
