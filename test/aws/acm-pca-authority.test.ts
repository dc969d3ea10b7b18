import 'aws-sdk-client-mock-jest';
import {
  ACMPCAClient,
  DescribeCertificateAuthorityCommand,
  GetCertificateCommand,
  IssueCertificateCommand,
  MalformedCSRException,
  RequestInProgressException,
} from '@aws-sdk/client-acm-pca';
import {
  AcmPcaCertificateAuthority,
  CertificateNotReadyError,
  pcaIdempotencyToken,
} from '../../lambdas/adapters/aws/acm-pca-authority';
import { cmd, mockSdk } from './sdk-mock';

const CA_ARN = 'arn:aws:acm-pca:eu-west-1:111122223333:certificate-authority/0b2f7c1e-1234-4abc-9def-0123456789ab';
const CERT_ARN = `${CA_ARN}/certificate/6c5d4e3f2a1b`;
const CSR = '-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----\n';
const pcaMock = mockSdk(ACMPCAClient);
const sleeps: number[] = [];
const sleep = (ms: number) => {
  sleeps.push(ms);
  return Promise.resolve();
};
const authority = () => new AcmPcaCertificateAuthority(new ACMPCAClient({ region: 'eu-west-1' }), CA_ARN, { sleep });
const inProgress = () => new RequestInProgressException({ message: 'The request is in progress', $metadata: {} });

beforeEach(() => {
  pcaMock.reset();
  sleeps.length = 0;
});

describe('AcmPcaCertificateAuthority.issue', () => {
  it('issues from the CSR and polls GetCertificate while the request is in progress', async () => {
    pcaMock.on(cmd(IssueCertificateCommand)).resolves({ CertificateArn: CERT_ARN });
    pcaMock
      .on(cmd(GetCertificateCommand))
      .rejectsOnce(inProgress())
      .rejectsOnce(inProgress())
      .resolves({ Certificate: 'CERT-PEM', CertificateChain: 'CHAIN-PEM' });

    await expect(
      authority().issue({
        csrPem: CSR,
        validityDays: 1095,
        signingAlgorithm: 'SHA256WITHRSA',
        idempotencyToken: 'task-1-chunk-0',
      }),
    ).resolves.toEqual({ certificatePem: 'CERT-PEM', chainPem: 'CHAIN-PEM', certificateArn: CERT_ARN });

    expect(pcaMock.commandCalls(cmd(IssueCertificateCommand))[0]!.args[0].input).toEqual({
      CertificateAuthorityArn: CA_ARN,
      Csr: Buffer.from(CSR),
      SigningAlgorithm: 'SHA256WITHRSA',
      Validity: { Type: 'DAYS', Value: 1095 },
      IdempotencyToken: 'task-1-chunk-0',
    });
    expect(pcaMock).toHaveReceivedCommandTimes(cmd(GetCertificateCommand), 3);
    expect(pcaMock).toHaveReceivedCommandWith(cmd(GetCertificateCommand), {
      CertificateAuthorityArn: CA_ARN,
      CertificateArn: CERT_ARN,
    });
    expect(sleeps).toEqual([200, 400, 800]);
  });

  it('gives up after 20 polls with CertificateNotReadyError', async () => {
    pcaMock.on(cmd(IssueCertificateCommand)).resolves({ CertificateArn: CERT_ARN });
    pcaMock.on(cmd(GetCertificateCommand)).rejects(inProgress());
    const caught = await authority()
      .issue({ csrPem: CSR, validityDays: 30, signingAlgorithm: 'SHA256WITHECDSA' })
      .catch((e: unknown) => e);
    expect(caught).toBeInstanceOf(CertificateNotReadyError);
    expect(caught).toMatchObject({ name: 'CertificateNotReadyError', certificateArn: CERT_ARN });
    expect(pcaMock).toHaveReceivedCommandTimes(cmd(GetCertificateCommand), 20);
    expect(sleeps.slice(0, 6)).toEqual([200, 400, 800, 1600, 2000, 2000]);
  });

  it('lets other errors through', async () => {
    pcaMock.on(cmd(IssueCertificateCommand)).rejects(new MalformedCSRException({ message: 'bad CSR', $metadata: {} }));
    await expect(
      authority().issue({ csrPem: CSR, validityDays: 30, signingAlgorithm: 'SHA256WITHECDSA' }),
    ).rejects.toMatchObject({ name: 'MalformedCSRException' });
  });

  it('leaves IdempotencyToken out when none is given and refuses a bad validity', async () => {
    pcaMock.on(cmd(IssueCertificateCommand)).resolves({ CertificateArn: CERT_ARN });
    pcaMock.on(cmd(GetCertificateCommand)).resolves({ Certificate: 'C' });
    await expect(
      authority().issue({ csrPem: CSR, validityDays: 30, signingAlgorithm: 'SHA384WITHECDSA' }),
    ).resolves.toEqual({ certificatePem: 'C', chainPem: '', certificateArn: CERT_ARN });
    expect(pcaMock.commandCalls(cmd(IssueCertificateCommand))[0]!.args[0].input).not.toHaveProperty('IdempotencyToken');
    await expect(
      authority().issue({ csrPem: CSR, validityDays: 0, signingAlgorithm: 'SHA384WITHECDSA' }),
    ).rejects.toMatchObject({ code: 'INVALID_VALIDITY' });
  });

  it('shortens idempotency tokens longer than 36 characters, deterministically', async () => {
    const long = 'bulk-issuance/0b2f7c1e-1234-4abc-9def-0123456789ab/chunk-17';
    expect(pcaIdempotencyToken('short')).toBe('short');
    expect(pcaIdempotencyToken(long)).toHaveLength(36);
    expect(pcaIdempotencyToken(long)).toBe(pcaIdempotencyToken(long));
    pcaMock.on(cmd(IssueCertificateCommand)).resolves({ CertificateArn: CERT_ARN });
    pcaMock.on(cmd(GetCertificateCommand)).resolves({ Certificate: 'C' });
    await authority().issue({
      csrPem: CSR,
      validityDays: 30,
      signingAlgorithm: 'SHA256WITHRSA',
      idempotencyToken: long,
    });
    expect(pcaMock).toHaveReceivedCommandWith(cmd(IssueCertificateCommand), {
      IdempotencyToken: pcaIdempotencyToken(long),
    });
  });
});

describe('AcmPcaCertificateAuthority.signingAlgorithmForCa', () => {
  it.each([
    ['RSA_2048', 'SHA256WITHRSA'],
    ['RSA_4096', 'SHA256WITHRSA'],
    ['EC_prime256v1', 'SHA256WITHECDSA'],
    ['EC_secp384r1', 'SHA384WITHECDSA'],
  ])('ok/%s → %s', async (keyAlgorithm, expected) => {
    pcaMock.on(cmd(DescribeCertificateAuthorityCommand)).resolves({
      CertificateAuthority: {
        CertificateAuthorityConfiguration: {
          KeyAlgorithm: keyAlgorithm as never,
          SigningAlgorithm: 'SHA256WITHRSA',
          Subject: {},
        },
      },
    });
    const ca = authority();
    await expect(ca.signingAlgorithmForCa()).resolves.toBe(expected);
    await expect(ca.signingAlgorithmForCa()).resolves.toBe(expected);
    expect(pcaMock).toHaveReceivedCommandTimes(cmd(DescribeCertificateAuthorityCommand), 1);
    expect(pcaMock).toHaveReceivedCommandWith(cmd(DescribeCertificateAuthorityCommand), {
      CertificateAuthorityArn: CA_ARN,
    });
  });

  it('error/an unsupported key algorithm is refused, and asked again next time', async () => {
    pcaMock.on(cmd(DescribeCertificateAuthorityCommand)).resolves({
      CertificateAuthority: {
        CertificateAuthorityConfiguration: {
          KeyAlgorithm: 'SM2' as never,
          SigningAlgorithm: 'SM3WITHSM2' as never,
          Subject: {},
        },
      },
    });
    const ca = authority();
    await expect(ca.signingAlgorithmForCa()).rejects.toMatchObject({ code: 'UNSUPPORTED_CA_KEY_ALGORITHM' });
    await expect(ca.signingAlgorithmForCa()).rejects.toMatchObject({ code: 'UNSUPPORTED_CA_KEY_ALGORITHM' });
    expect(pcaMock).toHaveReceivedCommandTimes(cmd(DescribeCertificateAuthorityCommand), 2);
  });
});
