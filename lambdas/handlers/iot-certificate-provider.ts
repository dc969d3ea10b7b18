/**
 * The AWS IoT certificate provider Lambda (AWS::IoT::CertificateProvider, CreateCertificateFromCsr): AWS IoT invokes
 * it with `{ certificateSigningRequest, principalId, clientId }` and hands `{ certificatePem }` to the device. The
 * CA (key or PCA signing algorithm) is loaded on the first call and kept for the life of the container. Logs name
 * the certificate by serial number and id (its SHA-256 fingerprint), never the CSR or the PEM.
 */
import { awsCertificateProviderDeps, providerClients } from '../adapters/aws/provider-deps';
import { isCertflowError } from '../core/errors';
import {
  type CertificateProviderDeps,
  type CertificateProviderResponse,
  provideCertificate,
} from '../core/provider/certificate-provider';
import { lambdaBundle, logger } from './bundle';
import { CertificateProviderEnv } from './env';

/** principalId and clientId as AWS IoT sent them, for the logs (before validation: only short strings). */
function callerOf(event: unknown): { principalId?: string; clientId?: string } {
  const fields = typeof event === 'object' && event !== null ? (event as Record<string, unknown>) : {};
  const short = (value: unknown) => (typeof value === 'string' && value.length <= 256 ? value : undefined);
  return { principalId: short(fields.principalId), clientId: short(fields.clientId) };
}

export const createHandler =
  (deps: CertificateProviderDeps) =>
  async (event: unknown): Promise<CertificateProviderResponse> => {
    const started = Date.now();
    const caller = callerOf(event);
    try {
      const { certificatePem, certificate } = await provideCertificate(deps, event);
      logger.info('certificate issued', {
        ...caller,
        issuerId: deps.signer.issuerId,
        certificateId: certificate.id,
        serialNumber: certificate.serialNumber,
        notAfter: certificate.notAfter.toISOString(),
        durationMs: Date.now() - started,
      });
      return { certificatePem };
    } catch (error) {
      if (isCertflowError(error)) {
        // the request's fault (bad CSR, weak key …): its code, never the CSR
        logger.warn('certificate request refused', { ...caller, code: error.code, reason: error.message });
      } else {
        logger.error('certificate not issued', { ...caller, error, durationMs: Date.now() - started });
      }
      throw error;
    }
  };

export const handler = lambdaBundle(CertificateProviderEnv, (env) =>
  createHandler(awsCertificateProviderDeps(env, providerClients())),
);
