import { EnvSupplierDirectory } from '../../lambdas/adapters/aws/env-supplier-directory';

const PCA_ARN = 'arn:aws:acm-pca:eu-west-1:111122223333:certificate-authority/0b2f7c1e-1234-4abc-9def-0123456789ab';
const CA_ID = 'a'.repeat(64);

describe('EnvSupplierDirectory', () => {
  it('reads suppliers from the SUPPLIERS JSON', async () => {
    const directory = new EnvSupplierDirectory({
      SUPPLIERS: JSON.stringify({
        acme: { type: 'certflow', caId: CA_ID },
        b: { type: 'acm-pca', arn: PCA_ARN },
        c: { type: 'aws-iot' },
      }),
    });
    await expect(directory.get('acme')).resolves.toEqual({ type: 'certflow', caId: CA_ID });
    await expect(directory.get('b')).resolves.toEqual({ type: 'acm-pca', arn: PCA_ARN });
    await expect(directory.get('c')).resolves.toEqual({ type: 'aws-iot' });
  });

  it.each([
    ['ok/AwsIotDefault is AWS IoT', 'AwsIotDefault', { type: 'aws-iot' }],
    ['ok/an ACM PCA ARN', PCA_ARN, { type: 'acm-pca', arn: PCA_ARN }],
    ['ok/anything else is a certflow CA id', CA_ID, { type: 'certflow', caId: CA_ID }],
  ])('reads CDF SUPPLIER_CA_{SUPPLIER}: %s', async (_label, value, expected) => {
    const directory = new EnvSupplierDirectory({ SUPPLIER_CA_ACME: value });
    await expect(directory.get('acme')).resolves.toEqual(expected);
    await expect(directory.get('ACME')).resolves.toEqual(expected);
  });

  it('prefers SUPPLIERS over SUPPLIER_CA_ when both name a supplier', async () => {
    const directory = new EnvSupplierDirectory({
      SUPPLIERS: JSON.stringify({ acme: { type: 'aws-iot' } }),
      SUPPLIER_CA_ACME: CA_ID,
    });
    await expect(directory.get('acme')).resolves.toEqual({ type: 'aws-iot' });
  });

  it('answers undefined for an unknown supplier', async () => {
    const directory = new EnvSupplierDirectory({ SUPPLIER_CA_ACME: CA_ID, PATH: '/usr/bin' });
    await expect(directory.get('globex')).resolves.toBeUndefined();
    await expect(new EnvSupplierDirectory({}).get('acme')).resolves.toBeUndefined();
  });

  it.each([
    ['error/SUPPLIERS is not JSON', { SUPPLIERS: '{acme' }, /SUPPLIERS: not valid JSON/],
    ['error/unknown type', { SUPPLIERS: '{"a":{"type":"vault"}}' }, /SUPPLIERS/],
    [
      'error/acm-pca without a PCA ARN',
      { SUPPLIERS: '{"a":{"type":"acm-pca","arn":"arn:aws:s3:::bucket"}}' },
      /ACM PCA/,
    ],
    ['error/certflow without caId', { SUPPLIERS: '{"a":{"type":"certflow"}}' }, /SUPPLIERS/],
    ['error/unexpected field', { SUPPLIERS: '{"a":{"type":"aws-iot","arn":"x"}}' }, /SUPPLIERS/],
    ['error/SUPPLIER_CA_ with a non-PCA ARN', { SUPPLIER_CA_X: 'arn:aws:iam::111122223333:role/r' }, /SUPPLIER_CA_X/],
    ['error/SUPPLIER_CA_ empty', { SUPPLIER_CA_X: ' ' }, /SUPPLIER_CA_X/],
  ])('%s fails when the directory is built', (_label, env, message) => {
    expect(() => new EnvSupplierDirectory(env)).toThrow(message);
  });
});
