/** The coordinator's TLS certificate as the API shows it (/api/v1/certificate). */

/** GET /api/v1/certificate on a TLS coordinator: the certificate it serves. */
export interface CertificateView {
  tls: true;
  subject: string;
  issuer: string;
  subjectAltName: { dns: string[]; ips: string[] };
  validFrom: string;
  validTo: string;
  fingerprint256: string;
  selfSigned: boolean;
  /** Certificates in the file: the server's own plus its intermediates. */
  chainLength: number;
  files: { certificate: string; key: string };
}

/** GET /api/v1/certificate on a plain-HTTP coordinator. */
export interface PlainHttpView {
  tls: false;
  message: string;
}

/** PUT /api/v1/certificate: the new certificate, and whether the selected backup accepted it. */
export interface CertificateReplacedView {
  certificate: CertificateView;
  /** null when no backup is selected. */
  backup: { name: string; confirmed: boolean; message: string } | null;
}

/** GET /api/v1/certificate: the certificate served, or that there is none (plain HTTP). */
export type CertificateStatusView = CertificateView | PlainHttpView;
