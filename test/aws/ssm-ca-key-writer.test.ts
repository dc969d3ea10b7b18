import 'aws-sdk-client-mock-jest';
import { IoTClient } from '@aws-sdk/client-iot';
import { GetParameterCommand, ParameterAlreadyExists, PutParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import { ConflictError, ValidationError } from '../../lambdas/core/errors';
import { createIntermediateCa, createRootCa, type CreatedCa, privateKeyToPem } from '../../lambdas/core/pki';
import { SsmCaKeyWriter } from '../../lambdas/adapters/aws/ssm-ca-key-writer';
import { cmd, mockSdk } from './sdk-mock';

const NOW = new Date('2026-01-01T00:00:00.000Z');
const ssmMock = mockSdk(SSMClient);
const iotMock = mockSdk(IoTClient);
const ssm = new SSMClient({ region: 'eu-west-1' });

let root: CreatedCa;
let intermediate: CreatedCa;
let other: CreatedCa;

const alreadyExists = () => new ParameterAlreadyExists({ message: 'The parameter already exists.', $metadata: {} });

beforeAll(async () => {
  root = await createRootCa({ subject: { commonName: 'Acme Root' }, validity: { days: 3650 }, now: NOW });
  intermediate = await createIntermediateCa(root.issuer, {
    subject: { commonName: 'Acme Devices' },
    validity: { days: 1825 },
    now: NOW,
  });
  other = await createRootCa({ subject: { commonName: 'Other Root' }, validity: { days: 3650 }, now: NOW });
});

beforeEach(() => {
  ssmMock.reset();
  iotMock.reset();
  ssmMock.on(cmd(PutParameterCommand)).resolves({ Version: 1, Tier: 'Standard' });
});

const puts = () => ssmMock.commandCalls(cmd(PutParameterCommand)).map((c) => c.args[0].input);

describe('SsmCaKeyWriter', () => {
  it('writes the certificate and the chain, then the key as a SecureString never overwritten', async () => {
    const caId = intermediate.certificate.id;
    await new SsmCaKeyWriter(ssm).save(caId, {
      certificatePem: intermediate.certificate.pem,
      chainPem: root.certificate.pem,
      privateKey: intermediate.privateKey,
    });
    expect(puts()).toEqual([
      {
        Name: `cdf-ca-cert-${caId}`,
        Value: intermediate.certificate.pem,
        Type: 'String',
        Overwrite: true,
        Tier: 'Standard',
      },
      { Name: `cdf-ca-chain-${caId}`, Value: root.certificate.pem, Type: 'String', Overwrite: true, Tier: 'Standard' },
      {
        Name: `cdf-ca-key-${caId}`,
        Value: privateKeyToPem(intermediate.privateKey),
        Type: 'SecureString',
        Overwrite: false,
        Tier: 'Standard',
      },
    ]);
    expect(puts()[2]!.Value).toMatch(/^-----BEGIN PRIVATE KEY-----/);
    expect(iotMock.calls()).toHaveLength(0); // the CA is not registered with AWS IoT
  });

  it('writes no chain parameter for a root', async () => {
    const caId = root.certificate.id;
    await new SsmCaKeyWriter(ssm, new IoTClient({ region: 'eu-west-1' })).save(caId, {
      certificatePem: root.certificate.pem,
      privateKey: root.privateKey,
    });
    expect(puts().map((p) => p.Name)).toEqual([`cdf-ca-cert-${caId}`, `cdf-ca-key-${caId}`]);
  });

  it('encrypts the key with the customer KMS key when given (the key only)', async () => {
    const caId = root.certificate.id;
    await new SsmCaKeyWriter(ssm, undefined, { kmsKeyId: 'alias/certflow-ca' }).save(caId, {
      certificatePem: root.certificate.pem,
      privateKey: root.privateKey,
    });
    expect(puts()[1]).toMatchObject({ Name: `cdf-ca-key-${caId}`, Type: 'SecureString', KeyId: 'alias/certflow-ca' });
    expect(puts()[0]).not.toHaveProperty('KeyId');
  });

  it('uses the Advanced tier for a value above 4 KB and refuses one above 8 KB', async () => {
    const caId = intermediate.certificate.id;
    const longChain = Array.from({ length: 12 }, () => root.certificate.pem).join('');
    expect(Buffer.byteLength(longChain)).toBeGreaterThan(4096);
    expect(Buffer.byteLength(longChain)).toBeLessThanOrEqual(8192);
    const input = { certificatePem: intermediate.certificate.pem, privateKey: intermediate.privateKey };
    await new SsmCaKeyWriter(ssm).save(caId, { ...input, chainPem: longChain });
    expect(puts()[1]).toMatchObject({ Name: `cdf-ca-chain-${caId}`, Tier: 'Advanced' });
    expect(puts()[0]).toMatchObject({ Tier: 'Standard' });

    ssmMock.resetHistory();
    const caught = await new SsmCaKeyWriter(ssm)
      .save(caId, { ...input, chainPem: longChain + longChain })
      .catch((e: unknown) => e);
    expect(caught).toBeInstanceOf(ValidationError);
    expect(caught).toMatchObject({ code: 'CA_PARAMETER_TOO_LARGE' });
    expect(puts().map((p) => p.Name)).not.toContain(`cdf-ca-key-${caId}`);
  });

  it('succeeds when a retried save finds its own key stored', async () => {
    const caId = root.certificate.id;
    ssmMock.on(cmd(PutParameterCommand), { Name: `cdf-ca-key-${caId}` }).rejects(alreadyExists());
    ssmMock
      .on(cmd(GetParameterCommand), { Name: `cdf-ca-key-${caId}` })
      .resolves({ Parameter: { Type: 'SecureString', Value: privateKeyToPem(root.privateKey) } });
    await new SsmCaKeyWriter(ssm).save(caId, { certificatePem: root.certificate.pem, privateKey: root.privateKey });
    expect(ssmMock).toHaveReceivedCommandWith(cmd(GetParameterCommand), {
      Name: `cdf-ca-key-${caId}`,
      WithDecryption: true,
    });
  });

  it('throws ConflictError CA_KEY_EXISTS when another key is stored, without the key in the error', async () => {
    const caId = root.certificate.id;
    const otherPem = privateKeyToPem(other.privateKey);
    ssmMock.on(cmd(PutParameterCommand), { Name: `cdf-ca-key-${caId}` }).rejects(alreadyExists());
    ssmMock
      .on(cmd(GetParameterCommand), { Name: `cdf-ca-key-${caId}` })
      .resolves({ Parameter: { Type: 'SecureString', Value: otherPem } });
    const caught = await new SsmCaKeyWriter(ssm)
      .save(caId, { certificatePem: root.certificate.pem, privateKey: root.privateKey })
      .catch((e: unknown) => e);
    expect(caught).toBeInstanceOf(ConflictError);
    expect(caught).toMatchObject({ code: 'CA_KEY_EXISTS' });
    const text = JSON.stringify(caught) + String((caught as Error).message) + String((caught as Error).stack);
    expect(text).not.toContain('PRIVATE KEY');
    expect(text).not.toContain(otherPem.split('\n')[1]!);
    expect(text).not.toContain(privateKeyToPem(root.privateKey).split('\n')[1]!);
  });

  it('lets SSM errors through with their name', async () => {
    ssmMock
      .on(cmd(PutParameterCommand))
      .rejects(Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException' }));
    await expect(
      new SsmCaKeyWriter(ssm).save(root.certificate.id, {
        certificatePem: root.certificate.pem,
        privateKey: root.privateKey,
      }),
    ).rejects.toMatchObject({ name: 'ThrottlingException' });
  });

  it.each([
    ['error/certificate of another CA', 'CA_ID_MISMATCH', () => ({ caId: root.certificate.id, ca: intermediate })],
    [
      'error/key of another CA',
      'CA_KEY_MISMATCH',
      () => ({ caId: root.certificate.id, ca: { ...root, privateKey: other.privateKey } }),
    ],
  ])('%s → %s, nothing written', async (_label, code, given) => {
    const { caId, ca } = given();
    const caught = await new SsmCaKeyWriter(ssm)
      .save(caId, { certificatePem: ca.certificate.pem, privateKey: ca.privateKey })
      .catch((e: unknown) => e);
    expect(caught).toBeInstanceOf(ValidationError);
    expect(caught).toMatchObject({ code });
    expect(ssmMock.calls()).toHaveLength(0);
  });
});
