import { createPrivateKey, createPublicKey, type KeyObject, randomBytes, verify } from 'node:crypto';
import type { IoTClient } from '@aws-sdk/client-iot';
import type { SSMClient } from '@aws-sdk/client-ssm';
import { ValidationError } from '../../core/errors';
import { KeyObjectSigner, spkiDer } from '../../core/pki';
import type { CaKeyStore, LoadedCa } from '../../core/ports';
import {
  caChainFromBundle,
  caChainParameter,
  caKeyParameter,
  caNotFound,
  caCertificate,
  getParameter,
  LoadCache,
} from './ca-certificates';

/**
 * CaKeyStore as CDF keeps CAs: the private key PEM in the SSM SecureString `cdf-ca-key-{caId}`, the certificate
 * in `cdf-ca-cert-{caId}` (CAs certflow created) or registered with AWS IoT (`DescribeCACertificate`, CDF's CAs),
 * and optionally the chain above it in `cdf-ca-chain-{caId}`.
 * Loaded CAs are cached for the life of the container. The key is never logged nor put in an error.
 */
export class SsmCaKeyStore implements CaKeyStore {
  private readonly cache = new LoadCache<LoadedCa>();

  constructor(
    private readonly ssm: SSMClient,
    private readonly iot: IoTClient,
  ) {}

  load(caId: string): Promise<LoadedCa> {
    return this.cache.get(caId, () => this.fetch(caId));
  }

  private async fetch(caId: string): Promise<LoadedCa> {
    const [keyPem, certificate, bundle] = await Promise.all([
      getParameter(this.ssm, caKeyParameter(caId), true),
      caCertificate(this.ssm, this.iot, caId),
      getParameter(this.ssm, caChainParameter(caId), false),
    ]);
    if (keyPem === undefined) throw caNotFound(caId, new Error(`SSM parameter ${caKeyParameter(caId)} not found`));
    let privateKey: KeyObject;
    try {
      privateKey = createPrivateKey(keyPem);
    } catch {
      // the OpenSSL error is dropped on purpose: nothing derived from the key text leaves this function
      throw new ValidationError('INVALID_CA_KEY', `the private key of CA ${caId} cannot be read`, {
        details: { caId },
      });
    }
    const mismatch = () =>
      new ValidationError('CA_KEY_MISMATCH', `the private key of CA ${caId} does not match its certificate`, {
        details: { caId, certificateId: certificate.id },
      });
    if (!spkiDer(createPublicKey(privateKey)).equals(certificate.spki)) throw mismatch();
    // The SPKI comparison alone is not enough: a PKCS#8 EC key carries its public key next to the private scalar,
    // and a damaged scalar still yields the right public key. A signature that verifies proves possession.
    const signer = new KeyObjectSigner(privateKey);
    const challenge = randomBytes(32);
    const publicKey = createPublicKey({ key: certificate.spki, format: 'der', type: 'spki' });
    if (!verify(signer.algorithm.hash, challenge, publicKey, signer.signSync(challenge))) throw mismatch();
    const chain = caChainFromBundle(caId, certificate, bundle);
    return { caId, issuer: { certificate, signer }, chain };
  }
}
