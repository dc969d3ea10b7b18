import 'aws-sdk-client-mock-jest';
import { createPrivateKey, createPublicKey, X509Certificate } from 'node:crypto';
import { DescribeCACertificateCommand, IoTClient, ResourceNotFoundException } from '@aws-sdk/client-iot';
import { GetParameterCommand, ParameterNotFound, SSMClient } from '@aws-sdk/client-ssm';
import { NotFoundError, ValidationError } from '../../lambdas/core/errors';
import {
  createIntermediateCa,
  createRootCa,
  type CreatedCa,
  issueLeaf,
  KeyObjectSigner,
  privateKeyToPem,
  spkiDer,
} from '../../lambdas/core/pki';
import { SsmCaKeyStore } from '../../lambdas/adapters/aws/ssm-ca-key-store';
import { cmd, mockSdk } from './sdk-mock';

const NOW = new Date();
const ssmMock = mockSdk(SSMClient);
const iotMock = mockSdk(IoTClient);
const newStore = () =>
  new SsmCaKeyStore(new SSMClient({ region: 'eu-west-1' }), new IoTClient({ region: 'eu-west-1' }));

let root: CreatedCa;
let intermediate: CreatedCa;
let other: CreatedCa;
let caId: string;

const notFound = () => new ParameterNotFound({ message: 'parameter not found', $metadata: {} });

/** SSM and IoT as CDF leaves them for `ca`, with `chain` (PEM bundle) above it when given. */
function given(ca: CreatedCa, options: { keyPem?: string; chain?: string } = {}): void {
  const id = ca.certificate.id;
  ssmMock.on(cmd(GetParameterCommand), { Name: `cdf-ca-key-${id}` }).resolves({
    Parameter: {
      Name: `cdf-ca-key-${id}`,
      Type: 'SecureString',
      Value: options.keyPem ?? privateKeyToPem(ca.privateKey),
    },
  });
  if (options.chain !== undefined) {
    ssmMock
      .on(cmd(GetParameterCommand), { Name: `cdf-ca-chain-${id}` })
      .resolves({ Parameter: { Name: `cdf-ca-chain-${id}`, Type: 'String', Value: options.chain } });
  } else {
    ssmMock.on(cmd(GetParameterCommand), { Name: `cdf-ca-chain-${id}` }).rejects(notFound());
  }
  // a CDF CA: no certificate in SSM, it is registered with AWS IoT
  ssmMock.on(cmd(GetParameterCommand), { Name: `cdf-ca-cert-${id}` }).rejects(notFound());
  iotMock
    .on(cmd(DescribeCACertificateCommand), { certificateId: id })
    .resolves({ certificateDescription: { certificateId: id, certificatePem: ca.certificate.pem, status: 'ACTIVE' } });
}

beforeAll(async () => {
  root = await createRootCa({
    subject: { commonName: 'Acme Root', organization: 'Acme' },
    validity: { days: 3650 },
    now: NOW,
  });
  intermediate = await createIntermediateCa(root.issuer, {
    subject: { commonName: 'Acme Devices', organization: 'Acme' },
    validity: { days: 1825 },
    now: NOW,
  });
  other = await createRootCa({ subject: { commonName: 'Other Root' }, validity: { days: 3650 }, now: NOW });
  caId = intermediate.certificate.id;
});

beforeEach(() => {
  ssmMock.reset();
  iotMock.reset();
});

describe('SsmCaKeyStore', () => {
  it('reads the certificate of a CA certflow created from cdf-ca-cert-{caId}, without asking AWS IoT', async () => {
    given(intermediate, { chain: root.certificate.pem });
    ssmMock
      .on(cmd(GetParameterCommand), { Name: `cdf-ca-cert-${caId}` })
      .resolves({ Parameter: { Name: `cdf-ca-cert-${caId}`, Type: 'String', Value: intermediate.certificate.pem } });
    const loaded = await newStore().load(caId);
    expect(loaded.issuer.certificate.id).toBe(caId);
    expect(iotMock).not.toHaveReceivedCommand(cmd(DescribeCACertificateCommand));
  });

  it('loads the key from SSM and the certificate from AWS IoT, with the chain above it', async () => {
    given(intermediate, { chain: root.certificate.pem });
    const loaded = await newStore().load(caId);

    expect(ssmMock).toHaveReceivedCommandWith(cmd(GetParameterCommand), {
      Name: `cdf-ca-key-${caId}`,
      WithDecryption: true,
    });
    expect(ssmMock).toHaveReceivedCommandWith(cmd(GetParameterCommand), { Name: `cdf-ca-chain-${caId}` });
    expect(iotMock).toHaveReceivedCommandWith(cmd(DescribeCACertificateCommand), { certificateId: caId });

    expect(loaded.caId).toBe(caId);
    expect(loaded.issuer.certificate.id).toBe(caId);
    expect(loaded.issuer.signer).toBeInstanceOf(KeyObjectSigner);
    expect(loaded.chain.map((c) => c.id)).toEqual([caId, root.certificate.id]);

    // the loaded issuer signs certificates that verify under the CA's public key
    const leaf = await issueLeaf(loaded.issuer, {
      profile: 'device',
      subject: { commonName: 'dev-1' },
      validity: { days: 30 },
      now: NOW,
    });
    expect(
      new X509Certificate(leaf.certificate.der).verify(new X509Certificate(intermediate.certificate.der).publicKey),
    ).toBe(true);
  });

  it('returns the CA alone when no chain parameter exists', async () => {
    given(root);
    const loaded = await newStore().load(root.certificate.id);
    expect(loaded.chain.map((c) => c.id)).toEqual([root.certificate.id]);
  });

  it('accepts a chain bundle that repeats the CA itself', async () => {
    given(intermediate, { chain: intermediate.certificate.pem + root.certificate.pem });
    const loaded = await newStore().load(caId);
    expect(loaded.chain.map((c) => c.id)).toEqual([caId, root.certificate.id]);
  });

  it('refuses a chain bundle holding a certificate that does not certify the CA', async () => {
    given(intermediate, { chain: root.certificate.pem + other.certificate.pem });
    await expect(newStore().load(caId)).rejects.toMatchObject({ code: 'CA_CHAIN_INVALID' });
  });

  it('throws NotFoundError CA_NOT_FOUND when the key parameter does not exist', async () => {
    given(intermediate);
    ssmMock.on(cmd(GetParameterCommand), { Name: `cdf-ca-key-${caId}` }).rejects(notFound());
    const caught = await newStore()
      .load(caId)
      .catch((e: unknown) => e);
    expect(caught).toBeInstanceOf(NotFoundError);
    expect(caught).toMatchObject({ code: 'CA_NOT_FOUND', details: { caId } });
  });

  it('throws NotFoundError CA_NOT_FOUND when AWS IoT does not know the CA', async () => {
    given(intermediate);
    iotMock
      .on(cmd(DescribeCACertificateCommand))
      .rejects(new ResourceNotFoundException({ message: 'no CA', $metadata: {} }));
    await expect(newStore().load(caId)).rejects.toMatchObject({ name: 'NotFoundError', code: 'CA_NOT_FOUND' });
  });

  it('refuses a key that does not match the certificate (CA_KEY_MISMATCH)', async () => {
    given(intermediate, { keyPem: privateKeyToPem(other.privateKey) });
    const caught = await newStore()
      .load(caId)
      .catch((e: unknown) => e);
    expect(caught).toBeInstanceOf(ValidationError);
    expect(caught).toMatchObject({ code: 'CA_KEY_MISMATCH' });
  });

  it('refuses a key whose private scalar is damaged although its embedded public key matches', async () => {
    const der = intermediate.privateKey.export({ type: 'pkcs8', format: 'der' });
    const scalar = der.indexOf(Buffer.from([0x02, 0x01, 0x01, 0x04, 0x20])) + 5; // ECPrivateKey version 1, OCTET STRING(32)
    der[scalar] = der[scalar]! ^ 0xff;
    const damaged = createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
    expect(spkiDer(createPublicKey(damaged)).equals(intermediate.certificate.spki)).toBe(true); // SPKI alone is fooled
    given(intermediate, { keyPem: privateKeyToPem(damaged) });
    await expect(newStore().load(caId)).rejects.toMatchObject({ code: 'CA_KEY_MISMATCH' });
  });

  it('never puts key material in an error, even for a damaged key', async () => {
    // truncated: the header, the first base64 line of the real key, the footer
    const lines = privateKeyToPem(intermediate.privateKey).split('\n');
    const damaged = `${lines[0]}\n${lines[1]}\n${lines[lines.length - 2]}\n`;
    given(intermediate, { keyPem: damaged });
    const log = jest.spyOn(console, 'log');
    const error = jest.spyOn(console, 'error');
    const caught = (await newStore()
      .load(caId)
      .catch((e: unknown) => e)) as ValidationError;
    expect(caught).toMatchObject({ code: 'INVALID_CA_KEY' });
    const text = JSON.stringify({
      ...caught,
      message: caught.message,
      stack: caught.stack,
      cause: String(caught.cause),
    });
    expect(text).not.toContain('PRIVATE KEY');
    expect(text).not.toContain(damaged.split('\n')[1]!);
    expect(log).not.toHaveBeenCalled();
    expect(error).not.toHaveBeenCalled();
    log.mockRestore();
    error.mockRestore();
  });

  it('caches a loaded CA for the life of the container, and shares a load in flight', async () => {
    given(intermediate, { chain: root.certificate.pem });
    const store = newStore();
    const [a, b] = await Promise.all([store.load(caId), store.load(caId)]);
    const c = await store.load(caId);
    expect(a).toBe(b);
    expect(c).toBe(a);
    expect(ssmMock).toHaveReceivedCommandTimes(cmd(GetParameterCommand), 3); // key + certificate + chain, once
    expect(iotMock).toHaveReceivedCommandTimes(cmd(DescribeCACertificateCommand), 1);
  });

  it('does not cache a failed load', async () => {
    given(intermediate);
    ssmMock.on(cmd(GetParameterCommand), { Name: `cdf-ca-key-${caId}` }).rejectsOnce(new Error('throttled'));
    const store = newStore();
    await expect(store.load(caId)).rejects.toThrow('throttled');
    given(intermediate);
    await expect(store.load(caId)).resolves.toMatchObject({ caId });
  });
});
