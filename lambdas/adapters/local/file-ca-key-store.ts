import {
  createCipheriv,
  createDecipheriv,
  createPrivateKey,
  createPublicKey,
  KeyObject,
  randomBytes,
} from 'node:crypto';
import { chmod, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { NotFoundError, ValidationError } from '../../core/errors';
// the modules themselves, not the core/pki barrel: a signing thread loads this store, and the barrel would load
// @peculiar/x509 (CSRs) there for nothing, ~10 MB per thread
import { parseCertificate, type ParsedCertificate } from '../../core/pki/certificate';
import { KeyObjectSigner } from '../../core/pki/keys';
import { decodePemBlocks } from '../../core/pki/pem';
import type { CaKeyStore, LoadedCa } from '../../core/ports';

const CA_ID_RE = /^[A-Za-z0-9_-]{1,128}$/;

/**
 * The local runtime's CA key store: one folder per CA under `{dataDir}/cas/{caId}` with the certificate, the
 * chain above it, and the private key encrypted at rest (AES-256-GCM) under a master key kept in
 * `{dataDir}/master.key` (mode 0600) or given as `CERTFLOW_MASTER_KEY` (base64, 32 bytes).
 */
export class FileCaKeyStore implements CaKeyStore {
  private readonly cache = new Map<string, Promise<LoadedCa>>();

  constructor(
    private readonly dataDir: string,
    private readonly masterKeyBase64: string | undefined = process.env.CERTFLOW_MASTER_KEY,
  ) {}

  private folder(caId: string): string {
    if (!CA_ID_RE.test(caId)) throw new ValidationError('INVALID_CA_ID', `${caId} is not a CA id`);
    return join(this.dataDir, 'cas', caId);
  }

  private async masterKey(): Promise<Buffer> {
    if (this.masterKeyBase64) {
      const key = Buffer.from(this.masterKeyBase64, 'base64');
      if (key.length !== 32)
        throw new ValidationError('INVALID_MASTER_KEY', 'CERTFLOW_MASTER_KEY must be 32 bytes, base64');
      return key;
    }
    const path = join(this.dataDir, 'master.key');
    try {
      return Buffer.from((await readFile(path, 'utf8')).trim(), 'base64');
    } catch {
      await mkdir(this.dataDir, { recursive: true });
      const key = randomBytes(32);
      await writeFile(path, key.toString('base64'), { mode: 0o600, flag: 'wx' }).catch(async () => undefined);
      await chmod(path, 0o600);
      return Buffer.from((await readFile(path, 'utf8')).trim(), 'base64');
    }
  }

  /** Stores a CA: its certificate, the chain above it (issuer first) and its private key, encrypted. */
  async save(caId: string, ca: { certificatePem: string; chainPem?: string; privateKey: KeyObject }): Promise<void> {
    const dir = this.folder(caId);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', await this.masterKey(), iv);
    cipher.setAAD(Buffer.from(caId));
    const pkcs8 = ca.privateKey.export({ type: 'pkcs8', format: 'der' });
    const sealed = Buffer.concat([iv, cipher.update(pkcs8), cipher.final(), cipher.getAuthTag()]);
    await writeFile(join(dir, 'key.enc'), sealed, { mode: 0o600 });
    await writeFile(join(dir, 'certificate.pem'), ca.certificatePem);
    await writeFile(join(dir, 'chain.pem'), ca.chainPem ?? '');
    this.cache.delete(caId);
  }

  async list(): Promise<string[]> {
    try {
      return (await readdir(join(this.dataDir, 'cas'))).filter((n) => CA_ID_RE.test(n));
    } catch {
      return [];
    }
  }

  load(caId: string): Promise<LoadedCa> {
    let loaded = this.cache.get(caId);
    if (!loaded) {
      loaded = this.read(caId);
      loaded.catch(() => this.cache.delete(caId));
      this.cache.set(caId, loaded);
    }
    return loaded;
  }

  private async read(caId: string): Promise<LoadedCa> {
    const dir = this.folder(caId);
    let certificatePem: string;
    let sealed: Buffer;
    let chainPem = '';
    try {
      certificatePem = await readFile(join(dir, 'certificate.pem'), 'utf8');
      sealed = await readFile(join(dir, 'key.enc'));
      chainPem = await readFile(join(dir, 'chain.pem'), 'utf8').catch(() => '');
    } catch (cause) {
      throw new NotFoundError('CA_NOT_FOUND', `no CA ${caId}`, { cause });
    }
    const decipher = createDecipheriv('aes-256-gcm', await this.masterKey(), sealed.subarray(0, 12));
    decipher.setAAD(Buffer.from(caId));
    decipher.setAuthTag(sealed.subarray(sealed.length - 16));
    const pkcs8 = Buffer.concat([decipher.update(sealed.subarray(12, sealed.length - 16)), decipher.final()]);
    const privateKey = createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' });
    const certificate = parseCertificate(certificatePem);
    const signer = new KeyObjectSigner(privateKey);
    const spki = createPublicKey(privateKey).export({ type: 'spki', format: 'der' });
    if (!spki.equals(certificate.spki))
      throw new ValidationError('CA_KEY_MISMATCH', `the key of CA ${caId} does not match its certificate`);
    const chain: ParsedCertificate[] = [certificate];
    if (chainPem.trim()) for (const block of decodePemBlocks(chainPem)) chain.push(parseCertificate(block.der));
    return { caId, issuer: { certificate, signer }, chain };
  }
}
