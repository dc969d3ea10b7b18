/**
 * The CPU-bound half of a chunk: keys, certificates and the chunk zip, with no I/O. Lambda runs it in-process;
 * the local runtime runs it on worker threads so a batch uses every core.
 */
import { commonNameAt } from '../naming/common-name';
import { safeEntryName, ZipChunkBuilder } from '../packaging/zip';
import { pemBundle } from '../pki/chain';
import { DeviceCertificateTemplate, generateDeviceKey, privateKeyPem, publicKeyPem } from '../pki/fast';
import { randomSerials } from '../pki/certificate';
import { toPem } from '../pki/pem';
import type { DeviceFiles, LoadedCa } from '../ports';
import type { BatchRequest, ChunkRange } from './request';

export interface ManifestRow {
  commonName: string;
  path: string;
  certificateId: string;
  serialNumber: string;
}

export interface BuiltChunk {
  zip: Buffer;
  entriesLength: number;
  centralDirectoryLength: number;
  entryCount: number;
  /** CSV rows (no header) for manifest.csv */
  manifest: string;
  /** the chunk's certificates in order (for events) */
  rows: ManifestRow[];
  /**
   * the chunk's certificates as one PEM bundle, in order, when asked for (to register them): one string crosses
   * from a worker thread in one copy, where a thousand objects with a PEM each cost a structured clone of every one
   */
  certificatesPem?: string;
  /**
   * Set by a runtime whose builder can reuse the zip's memory (the local worker threads): called once the zip is
   * stored, after which `zip` must not be read.
   */
  release?: () => void;
}

export interface BuildOptions {
  /** return the certificates as one PEM bundle too (to register them) */
  keepCertificates?: boolean;
  /** a buffer for the zip to be written into (see ZipChunkBuilderOptions.buffer) */
  output?: Buffer;
}

const csvField = (v: string): string => (/[",\r\n]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v);
export const MANIFEST_HEADER = 'name,path,certificateId,serialNumber,notAfter\n';

/** Collects a chunk's files into a zip and manifest, in the batch's layout. */
export class ChunkPackager {
  private readonly zip: ZipChunkBuilder;
  private manifest = '';
  private certificatesPem: string | undefined;
  private readonly rows: ManifestRow[] = [];

  constructor(
    private readonly request: Pick<BatchRequest, 'layout' | 'uniqueNames' | 'notAfter' | 'notBefore'>,
    level: number,
    options: BuildOptions = {},
  ) {
    if (options.keepCertificates) this.certificatesPem = '';
    this.zip = new ZipChunkBuilder({
      mtime: new Date(request.notBefore),
      level,
      ...(options.output ? { buffer: options.output } : {}),
    });
  }

  add(index: number, files: DeviceFiles): void {
    const { request } = this;
    let path: string;
    if (request.layout === 'cdf') {
      path = `certs/${files.certificateId}`;
      this.zip.addText(`${path}_cert.pem`, files.certificatePem);
      if (files.privateKeyPem) this.zip.addText(`${path}_key.pem`, files.privateKeyPem, { mode: 0o600 });
    } else {
      const name = safeEntryName(files.commonName);
      path = request.uniqueNames ? name : `${name}-${index}`;
      this.zip.addText(`${path}/certificate.pem`, files.certificatePem);
      if (files.privateKeyPem) this.zip.addText(`${path}/private.key`, files.privateKeyPem, { mode: 0o600 });
      if (files.publicKeyPem) this.zip.addText(`${path}/public.key`, files.publicKeyPem);
      if (files.chainPem) this.zip.addText(`${path}/ca-chain.pem`, files.chainPem);
    }
    this.manifest += `${csvField(files.commonName)},${csvField(path)},${files.certificateId},${files.serialNumber},${request.notAfter}\n`;
    this.rows.push({
      commonName: files.commonName,
      path,
      certificateId: files.certificateId,
      serialNumber: files.serialNumber,
    });
    if (this.certificatesPem !== undefined) this.certificatesPem += files.certificatePem;
  }

  finish(): BuiltChunk {
    const zip = this.zip.finish();
    return {
      ...zip,
      manifest: this.manifest,
      rows: this.rows,
      ...(this.certificatesPem !== undefined ? { certificatesPem: this.certificatesPem } : {}),
    };
  }
}

/** Signs a chunk with a certflow CA whose key is in memory: template DER, fresh keys, one zip. */
export async function buildChunk(
  request: BatchRequest,
  range: ChunkRange,
  ca: LoadedCa,
  now: Date,
  level: number,
  options: BuildOptions = {},
): Promise<BuiltChunk> {
  const template = new DeviceCertificateTemplate(ca.issuer, {
    subject: request.subject,
    keyType: request.keyType,
    notBefore: new Date(request.notBefore),
    notAfter: new Date(request.notAfter),
    now,
  });
  const chainPem = request.includeCA ? pemBundle(ca.chain) : undefined;
  const packager = new ChunkPackager(request, level, options);
  // the chunk's serial numbers from one call to the random generator (one call per certificate cost ~10 µs each)
  const serials = randomSerials(range.count);
  for (let i = range.start; i < range.start + range.count; i++) {
    const commonName = commonNameAt(request.commonName, i);
    const key = generateDeviceKey(request.keyType);
    const cert = await template.issue(commonName, key.spki, serials[i - range.start]);
    packager.add(i, {
      commonName,
      certificateId: cert.id,
      serialNumber: cert.serialNumber,
      certificatePem: toPem('CERTIFICATE', cert.der),
      privateKeyPem: privateKeyPem(key),
      publicKeyPem: publicKeyPem(key),
      ...(chainPem ? { chainPem } : {}),
    });
  }
  return packager.finish();
}
