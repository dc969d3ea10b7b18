/** The CsrSigner of a configured signing CA (SIGNING_CA, ROTATION_SIGNING_CA): one construction for every flow. */
import type { ACMPCAClient } from '@aws-sdk/client-acm-pca';
import type { CaKeyStore, CaStore } from '../../core/ports';
import { CaKeyStoreCsrSigner, type CsrSigner } from '../../core/signing/csr-signer';
import type { SigningCa } from '../../handlers/env';
import { AcmPcaCertificateAuthority, type AcmPcaOptions } from './acm-pca-authority';
import { AcmPcaCsrSigner, type AcmPcaCsrSignerOptions } from './acm-pca-csr-signer';

export interface CsrSignerParts {
  /** where a certflow CA's key is (SSM or KMS) */
  caKeys: () => CaKeyStore;
  pca: ACMPCAClient;
  /** a certflow CA revoked here stops signing */
  cas?: Pick<CaStore, 'get'>;
  /** ACM PCA's waits and pace */
  pcaOptions?: AcmPcaOptions;
  pcaSigner?: AcmPcaCsrSignerOptions;
}

export function csrSignerFor(ca: SigningCa, parts: CsrSignerParts): CsrSigner {
  if (ca.type === 'acm-pca') {
    return new AcmPcaCsrSigner(new AcmPcaCertificateAuthority(parts.pca, ca.arn, parts.pcaOptions), parts.pcaSigner);
  }
  if (ca.type === 'certflow') return new CaKeyStoreCsrSigner(parts.caKeys(), ca.caId, parts.cas);
  throw new Error('CSRs are not signed by AWS IoT'); // refused by SigningCaSchema already
}
