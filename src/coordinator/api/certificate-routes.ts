/**
 * Admin › Certificates: the certificate this coordinator serves (any user), and replacing it
 * (admin, on the primary) without a restart. See docs/operations.md and, for a primary with a
 * backup, the rollover in docs/high-availability.md.
 */
import type { Server } from 'node:https';
import { isIP } from 'node:net';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { MusterError } from '../../protocol/errors.js';
import { checkCertificate } from '../tls/certificate-check.js';
import { backupConfirmWaitMs } from '../tls/certificate-manager.js';
import { recordAudit } from './audit.js';
import { requireAdmin, requireUser, type ApiContext } from './context.js';
import { parse } from './http-errors.js';
import { putCertificateBody } from '../../api/requests.js';
import type {
  CertificateReplacedView,
  CertificateStatusView,
} from '../../api/views/certificates.js';

/** A certificate with a few intermediates and a key fit easily; anything bigger is not one. */
const CERTIFICATE_BODY_LIMIT = 256 * 1024;

const PLAIN_HTTP =
  'this coordinator serves plain HTTP (started with --no-tls, or listening on a loopback address), so it has no certificate to replace: start it on another address without --no-tls, or with --tls-cert FILE --tls-key FILE, to serve HTTPS (a running coordinator cannot switch from HTTP to HTTPS)';

/**
 * The host names the new certificate must cover: the one the admin reached this coordinator by
 * (the Host header; the coordinator terminates TLS itself, so that is the name clients use) and
 * the host of --advertise-url when set.
 */
function requiredHostnames(request: FastifyRequest, advertiseUrl: string | undefined): string[] {
  const names = new Set<string>();
  const host = hostOf(request.headers.host);
  if (host) names.add(host);
  if (advertiseUrl) {
    const advertised = hostOf(new URL(advertiseUrl).host);
    if (advertised) names.add(advertised);
  }
  return [...names];
}

function hostOf(hostHeader: string | undefined): string | undefined {
  if (!hostHeader) return undefined;
  try {
    const name = new URL(`https://${hostHeader}`).hostname;
    const bare = name.startsWith('[') && name.endsWith(']') ? name.slice(1, -1) : name;
    return isIP(bare) !== 0 ? bare : bare.toLowerCase().replace(/\.$/, '');
  } catch {
    return undefined;
  }
}

export function registerCertificateRoutes(app: FastifyInstance, ctx: ApiContext): void {
  app.get('/api/v1/certificate', async (request): Promise<CertificateStatusView> => {
    requireUser(request);
    if (!ctx.certificates) return { tls: false, message: PLAIN_HTTP };
    return ctx.certificates.view();
  });

  app.put(
    '/api/v1/certificate',
    { bodyLimit: CERTIFICATE_BODY_LIMIT },
    async (request): Promise<CertificateReplacedView> => {
      const user = requireAdmin(request, ctx);
      const certificates = ctx.certificates;
      if (!certificates) throw new MusterError('TLS_NOT_ENABLED', PLAIN_HTTP);
      const body = parse(putCertificateBody, request.body, 'certificate upload');
      const hostnames = requiredHostnames(request, ctx.options.advertiseUrl);
      const checked = checkCertificate(body.certificate, body.key, hostnames, new Date());
      const waitMs = backupConfirmWaitMs(ctx.options.haHeartbeatMs);
      const result = await certificates.replace(checked, {
        confirmBackup: async (fingerprint) =>
          (await ctx.ha.primary?.awaitPin(fingerprint, waitMs)) ?? null,
        swap: (cert, key) => (app.server as unknown as Server).setSecureContext({ cert, key }),
      });
      // The certificate is public; the key is never recorded.
      recordAudit(ctx, request, 'certificate.replace', 'coordinator', {
        fingerprint: result.certificate.fingerprint256,
        hostnames,
      });
      request.log.info(
        { by: user.name, fingerprint: result.certificate.fingerprint256, hostnames },
        'certificate uploaded',
      );
      return result;
    },
  );
}
