import 'aws-sdk-client-mock-jest';
import {
  constants,
  createHash,
  generateKeyPairSync,
  type KeyObject,
  privateEncrypt,
  sign as cryptoSign,
  verify as cryptoVerify,
  X509Certificate,
} from 'node:crypto';
import { DescribeCACertificateCommand, IoTClient } from '@aws-sdk/client-iot';
import {
  GetPublicKeyCommand,
  type GetPublicKeyCommandOutput,
  KMSClient,
  SignCommand,
  type SignCommandInput,
} from '@aws-sdk/client-kms';
import { GetParameterCommand, ParameterNotFound, SSMClient } from '@aws-sdk/client-ssm';
import { ValidationError } from '../../lambdas/core/errors';
import { issueCertificate, issueLeaf, type ParsedCertificate, spkiDer } from '../../lambdas/core/pki';
import { KmsCaKeyStore, KmsSigner } from '../../lambdas/adapters/aws/kms-signer';
import { isThrottlingError } from '../../lambdas/adapters/aws/sdk-errors';
import { createPace } from '../../lambdas/core/pacing';
import { openssl, scratch } from '../helpers/openssl';
import { cmd, mockSdk } from './sdk-mock';

const NOW = new Date();
const KEY_ARN = 'arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab';
const kmsMock = mockSdk(KMSClient);
const ssmMock = mockSdk(SSMClient);
const iotMock = mockSdk(IoTClient);
const kms = new KMSClient({ region: 'eu-west-1' });

/** DigestInfo prefix of SHA-256 (RFC 8017 §9.2): what KMS puts before a DIGEST for RSASSA-PKCS1-v1_5. */
const SHA256_DIGEST_INFO = Buffer.from('3031300d060960864801650304020105000420', 'hex');

/**
 * A fake KMS holding `privateKey`: GetPublicKey answers its SPKI, Sign signs like KMS (RAW: hash and sign; DIGEST:
 * sign the given digest).
 */
function fakeKms(privateKey: KeyObject, publicKey: KeyObject, keySpec: GetPublicKeyCommandOutput['KeySpec']): void {
  kmsMock.on(cmd(GetPublicKeyCommand)).resolves({
    KeyId: KEY_ARN,
    PublicKey: spkiDer(publicKey),
    KeySpec: keySpec,
    KeyUsage: 'SIGN_VERIFY',
    SigningAlgorithms: keySpec!.startsWith('RSA')
      ? ['RSASSA_PKCS1_V1_5_SHA_256', 'RSASSA_PSS_SHA_256']
      : ['ECDSA_SHA_256', 'ECDSA_SHA_384'],
  });
  kmsMock.on(cmd(SignCommand)).callsFake((input: SignCommandInput) => {
    const message = Buffer.from(input.Message!);
    const hash = input.SigningAlgorithm === 'ECDSA_SHA_384' ? 'sha384' : 'sha256';
    let signature: Buffer;
    if (input.MessageType === 'RAW') {
      signature = cryptoSign(hash, message, privateKey); // ECDSA: DER, as KMS returns it
    } else if (input.SigningAlgorithm === 'RSASSA_PKCS1_V1_5_SHA_256') {
      signature = privateEncrypt(
        { key: privateKey, padding: constants.RSA_PKCS1_PADDING },
        Buffer.concat([SHA256_DIGEST_INFO, message]),
      );
    } else {
      throw new Error('the fake KMS signs digests with RSA only');
    }
    return { KeyId: KEY_ARN, Signature: signature, SigningAlgorithm: input.SigningAlgorithm };
  });
}

const selfSignedRoot = (signer: KmsSigner, sans?: { dns: string[] }): Promise<ParsedCertificate> =>
  issueCertificate(
    {
      profile: 'root',
      subject: { commonName: 'Acme KMS Root', organization: 'Acme' },
      publicKey: signer.publicKeySpki,
      validity: { days: 3650 },
      now: NOW,
      ...(sans ? { sans } : {}),
    },
    { selfSigner: signer },
  );

beforeEach(() => {
  kmsMock.reset();
  ssmMock.reset();
  iotMock.reset();
});

describe('KmsSigner', () => {
  it('signs a self-signed P-256 root that verifies with X509Certificate.verify', async () => {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    fakeKms(privateKey, publicKey, 'ECC_NIST_P256');

    const signer = await KmsSigner.create(kms, 'alias/certflow-root');
    expect(kmsMock).toHaveReceivedCommandWith(cmd(GetPublicKeyCommand), { KeyId: 'alias/certflow-root' });
    expect(signer.algorithm.name).toBe('ecdsa-with-SHA256');
    expect(signer.signingAlgorithm).toBe('ECDSA_SHA_256');
    expect(signer.publicKeySpki.equals(spkiDer(publicKey))).toBe(true);

    const root = await selfSignedRoot(signer);
    const x509 = new X509Certificate(root.der);
    expect(x509.verify(publicKey)).toBe(true);
    expect(x509.checkIssued(x509)).toBe(true);
    expect(root.isCa).toBe(true);

    expect(kmsMock).toHaveReceivedCommandTimes(cmd(GetPublicKeyCommand), 1);
    expect(kmsMock).toHaveReceivedCommandTimes(cmd(SignCommand), 1);
    expect(kmsMock).toHaveReceivedCommandWith(cmd(SignCommand), {
      KeyId: KEY_ARN, // the alias is resolved once: the key whose public key was checked signs
      Message: root.tbs,
      MessageType: 'RAW',
      SigningAlgorithm: 'ECDSA_SHA_256',
    });
  });

  it('signs with ECDSA_SHA_384 for a P-384 key', async () => {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-384' });
    fakeKms(privateKey, publicKey, 'ECC_NIST_P384');
    const signer = await KmsSigner.create(kms, KEY_ARN);
    expect(signer.algorithm.name).toBe('ecdsa-with-SHA384');
    const root = await selfSignedRoot(signer);
    expect(new X509Certificate(root.der).verify(publicKey)).toBe(true);
    expect(kmsMock).toHaveReceivedCommandWith(cmd(SignCommand), {
      SigningAlgorithm: 'ECDSA_SHA_384',
      MessageType: 'RAW',
    });
  });

  it('hashes messages over 4096 bytes locally and sends a DIGEST (RSA-2048 root with many names)', async () => {
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    fakeKms(privateKey, publicKey, 'RSA_2048');
    const signer = await KmsSigner.create(kms, KEY_ARN);
    expect(signer.algorithm.name).toBe('sha256WithRSAEncryption');

    const dns = Array.from({ length: 150 }, (_, i) => `gateway-${i}.devices.example.com`);
    const root = await selfSignedRoot(signer, { dns });
    expect(root.tbs.length).toBeGreaterThan(4096);
    expect(new X509Certificate(root.der).verify(publicKey)).toBe(true);
    expect(kmsMock).toHaveReceivedCommandWith(cmd(SignCommand), {
      KeyId: KEY_ARN,
      Message: createHash('sha256').update(root.tbs).digest(),
      MessageType: 'DIGEST',
      SigningAlgorithm: 'RSASSA_PKCS1_V1_5_SHA_256',
    });
  });

  it('sends RAW up to 4096 bytes', async () => {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    fakeKms(privateKey, publicKey, 'ECC_NIST_P256');
    const signer = await KmsSigner.create(kms, KEY_ARN);
    await signer.sign(Buffer.alloc(4096, 1));
    expect(kmsMock).toHaveReceivedCommandWith(cmd(SignCommand), { MessageType: 'RAW', Message: Buffer.alloc(4096, 1) });
  });

  it('takes a kms:Sign slot of the shared rate for every Sign and retries a throttled one', async () => {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    fakeKms(privateKey, publicKey, 'ECC_NIST_P256');
    let calls = 0;
    kmsMock.on(cmd(SignCommand)).callsFake((input: SignCommandInput) => {
      if (++calls === 1) {
        throw Object.assign(new Error('You have exceeded the rate at which you may call KMS'), {
          name: 'ThrottlingException',
          $metadata: { httpStatusCode: 400 },
        });
      }
      return { KeyId: KEY_ARN, Signature: cryptoSign('sha256', Buffer.from(input.Message!), privateKey) };
    });
    const slots: string[] = [];
    const pace = createPace({
      limiter: { acquire: async (api) => void slots.push(api) },
      isThrottling: isThrottlingError,
      retry: { sleep: async () => undefined },
    });
    const signer = await KmsSigner.create(kms, KEY_ARN, pace);

    const signature = await signer.sign(Buffer.from('tbs'));

    expect(cryptoVerify('sha256', Buffer.from('tbs'), publicKey, signature)).toBe(true);
    expect(kmsMock.commandCalls(cmd(SignCommand))).toHaveLength(2);
    expect(slots).toEqual(['kms:Sign', 'kms:Sign']); // GetPublicKey is not paced
  });

  it.each([
    ['error/secp256k1', { KeySpec: 'ECC_SECG_P256K1', KeyUsage: 'SIGN_VERIFY' }],
    ['error/symmetric', { KeySpec: 'SYMMETRIC_DEFAULT', KeyUsage: 'ENCRYPT_DECRYPT' }],
    ['error/RSA for encryption', { KeySpec: 'RSA_2048', KeyUsage: 'ENCRYPT_DECRYPT' }],
    ['error/ML-DSA', { KeySpec: 'ML_DSA_65', KeyUsage: 'SIGN_VERIFY' }],
  ] as const)('%s key is refused with UNSUPPORTED_KMS_KEY', async (_label, key) => {
    const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    kmsMock.on(cmd(GetPublicKeyCommand)).resolves({ KeyId: KEY_ARN, PublicKey: spkiDer(publicKey), ...key });
    const caught = await KmsSigner.create(kms, KEY_ARN).catch((e: unknown) => e);
    expect(caught).toBeInstanceOf(ValidationError);
    expect(caught).toMatchObject({ code: 'UNSUPPORTED_KMS_KEY' });
  });
});

describe('KmsCaKeyStore', () => {
  let caKey: { privateKey: KeyObject; publicKey: KeyObject };
  let caCert: ParsedCertificate;
  const store = () =>
    new KmsCaKeyStore(new SSMClient({ region: 'eu-west-1' }), new IoTClient({ region: 'eu-west-1' }), kms);

  beforeAll(async () => {
    caKey = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    kmsMock.reset();
    fakeKms(caKey.privateKey, caKey.publicKey, 'ECC_NIST_P256');
    caCert = await selfSignedRoot(await KmsSigner.create(kms, KEY_ARN));
  });

  const givenCa = (keyId: string | undefined) => {
    const id = caCert.id;
    if (keyId === undefined) {
      ssmMock
        .on(cmd(GetParameterCommand), { Name: `cdf-ca-kms-key-${id}` })
        .rejects(new ParameterNotFound({ message: 'not found', $metadata: {} }));
    } else {
      ssmMock.on(cmd(GetParameterCommand), { Name: `cdf-ca-kms-key-${id}` }).resolves({ Parameter: { Value: keyId } });
    }
    ssmMock
      .on(cmd(GetParameterCommand), { Name: `cdf-ca-chain-${id}` })
      .rejects(new ParameterNotFound({ message: 'not found', $metadata: {} }));
    iotMock
      .on(cmd(DescribeCACertificateCommand), { certificateId: id })
      .resolves({ certificateDescription: { certificateId: id, certificatePem: caCert.pem } });
  };

  it('loads the CA certificate from AWS IoT and signs with the KMS key named in SSM', async () => {
    fakeKms(caKey.privateKey, caKey.publicKey, 'ECC_NIST_P256');
    givenCa('alias/certflow-ca');
    const loaded = await store().load(caCert.id);

    expect(ssmMock).toHaveReceivedCommandWith(cmd(GetParameterCommand), { Name: `cdf-ca-kms-key-${caCert.id}` });
    expect(iotMock).toHaveReceivedCommandWith(cmd(DescribeCACertificateCommand), { certificateId: caCert.id });
    expect(kmsMock).toHaveReceivedCommandWith(cmd(GetPublicKeyCommand), { KeyId: 'alias/certflow-ca' });
    expect(loaded.issuer.signer).toBeInstanceOf(KmsSigner);
    expect(loaded.chain.map((c) => c.id)).toEqual([caCert.id]);

    const leaf = await issueLeaf(loaded.issuer, {
      profile: 'device',
      subject: { commonName: 'dev-1' },
      validity: { days: 30 },
      now: NOW,
    });
    expect(new X509Certificate(leaf.certificate.der).verify(caKey.publicKey)).toBe(true);

    // and openssl, the independent oracle, accepts the KMS-signed chain
    const dir = scratch();
    try {
      const result = await openssl([
        'verify',
        '-x509_strict',
        '-CAfile',
        dir.write('ca.pem', caCert.pem),
        dir.write('leaf.pem', leaf.certificate.pem),
      ]);
      expect(result).toMatchObject({ code: 0 });
      expect(result.stdout).toContain('leaf.pem: OK');
    } finally {
      dir.cleanup();
    }
  });

  it('refuses a KMS key that is not the certificate key (CA_KEY_MISMATCH)', async () => {
    const other = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    fakeKms(other.privateKey, other.publicKey, 'ECC_NIST_P256');
    givenCa(KEY_ARN);
    await expect(store().load(caCert.id)).rejects.toMatchObject({ code: 'CA_KEY_MISMATCH' });
  });

  it('throws CA_NOT_FOUND when no KMS key id is configured for the CA', async () => {
    givenCa(undefined);
    await expect(store().load(caCert.id)).rejects.toMatchObject({ name: 'NotFoundError', code: 'CA_NOT_FOUND' });
    expect(kmsMock).not.toHaveReceivedCommand(cmd(GetPublicKeyCommand));
  });

  it('caches the loaded CA', async () => {
    fakeKms(caKey.privateKey, caKey.publicKey, 'ECC_NIST_P256');
    givenCa(KEY_ARN);
    const s = store();
    expect(await s.load(caCert.id)).toBe(await s.load(caCert.id));
    expect(kmsMock).toHaveReceivedCommandTimes(cmd(GetPublicKeyCommand), 1);
  });
});
