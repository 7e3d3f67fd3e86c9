/**
 * Which certificates a backup accepts from its primary: the one pinned at first contact (trust on
 * first use, kept in ha.json), and during a certificate rollover the ones the primary announced
 * on the pinned connection. See docs/high-availability.md, Certificate rollover.
 */
import type { Logger } from 'pino';
import { sameFingerprint } from '../../protocol/fingerprint.js';
import type { IdentityFile } from './identity-file.js';
import type { HeartbeatView } from './primary-side.js';

export class PrimaryPins {
  constructor(
    private readonly identity: IdentityFile,
    /** Extra trusted certificate for the primary (PEM), e.g. its self-signed one. */
    private readonly primaryCa: string | undefined,
    private readonly log: Logger,
  ) {}

  /** The pins (fingerprints) this backup accepts for its primary; undefined before the first. */
  accepted(): string[] | undefined {
    const { primaryFingerprint: pinned, primaryPins } = this.identity.value;
    if (pinned === undefined) return undefined;
    const announced = (primaryPins ?? []).map((p) => p.fingerprint);
    return [pinned, ...announced.filter((f) => !sameFingerprint(f, pinned))];
  }

  /** How to verify the primary's certificate. */
  tls(): { ca: string | undefined; fingerprint: string[] | undefined } {
    const pins = this.accepted();
    // The primary's announced certificates are trusted only together with the pins, which
    // still name exactly which certificates may answer.
    const announced =
      pins === undefined
        ? []
        : (this.identity.value.primaryPins ?? []).flatMap((p) =>
            p.certificate ? [p.certificate] : [],
          );
    const ca = [this.primaryCa, ...announced].filter((c) => c !== undefined);
    return { ca: ca.length > 0 ? ca.join('\n') : undefined, fingerprint: pins };
  }

  /** Pins the certificate the primary presented, unless one is pinned already. */
  async pin(fingerprint: string | undefined): Promise<void> {
    if (fingerprint === undefined || this.identity.value.primaryFingerprint !== undefined) return;
    await this.identity.update({ primaryFingerprint: fingerprint });
    this.log.info({ fingerprint }, "pinned the primary's certificate");
  }

  /**
   * Certificate rollover: the primary, on this pinned connection, lists the certificates it may
   * present. They become the accepted pins (the old one goes once the primary presents the new
   * one), and the next heartbeat tells the primary, which waits for that before it swaps.
   */
  async follow(
    presented: string | undefined,
    announced: HeartbeatView['certificates'] | undefined,
  ): Promise<void> {
    const pinned = this.identity.value.primaryFingerprint;
    if (presented === undefined || announced === undefined || pinned === undefined) return;
    if (!announced.some((a) => sameFingerprint(a.fingerprint, presented))) return;
    const current = this.identity.value.primaryPins ?? [];
    const same =
      sameFingerprint(pinned, presented) &&
      current.length === announced.length &&
      announced.every((a) => current.some((c) => sameFingerprint(c.fingerprint, a.fingerprint)));
    if (same) return;
    const next = announced.filter((a) => !sameFingerprint(a.fingerprint, presented));
    await this.identity.update({
      primaryFingerprint: presented,
      primaryPins: announced.map((a) => ({
        fingerprint: a.fingerprint,
        certificate: a.certificate,
      })),
    });
    if (!sameFingerprint(pinned, presented))
      this.log.info(
        { fingerprint: presented, previous: pinned },
        'the primary presents its new certificate: pinned it, dropped the old pin',
      );
    for (const a of next)
      this.log.info(
        { fingerprint: a.fingerprint },
        'the primary announced its next certificate: accepting it as well as the current one',
      );
  }
}
