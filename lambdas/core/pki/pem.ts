import { ValidationError } from '../errors';

const PEM_RE = /-----BEGIN ([A-Z0-9 ]+)-----\r?\n([A-Za-z0-9+/=\r\n\t ]*?)-----END ([A-Z0-9 ]+)-----/g;

export function toPem(label: string, derBytes: Buffer): string {
  const b64 = derBytes.toString('base64');
  const lines: string[] = [];
  for (let i = 0; i < b64.length; i += 64) lines.push(b64.slice(i, i + 64));
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}

export interface PemBlock {
  label: string;
  der: Buffer;
}

/** Every PEM block in the text, in order. Throws INVALID_PEM when there is none or one is damaged. */
export function decodePemBlocks(text: string): PemBlock[] {
  if (typeof text !== 'string') throw new ValidationError('INVALID_PEM', 'PEM text expected');
  const blocks: PemBlock[] = [];
  for (const m of text.matchAll(PEM_RE)) {
    const [, begin, body, end] = m;
    if (begin !== end) throw new ValidationError('INVALID_PEM', `PEM block BEGIN ${begin} ends with END ${end}`);
    const clean = body!.replace(/\s+/g, '');
    if (clean.length === 0 || clean.length % 4 !== 0 || !/^[A-Za-z0-9+/]+={0,2}$/.test(clean)) {
      throw new ValidationError('INVALID_PEM', `PEM block ${begin} has a damaged base64 body`);
    }
    blocks.push({ label: begin!, der: Buffer.from(clean, 'base64') });
  }
  if (blocks.length === 0) throw new ValidationError('INVALID_PEM', 'no complete PEM block found');
  return blocks;
}

/** The first PEM block, which must carry one of the expected labels. */
export function decodePem(text: string, ...labels: string[]): Buffer {
  const first = decodePemBlocks(text)[0]!;
  if (labels.length > 0 && !labels.includes(first.label)) {
    throw new ValidationError(
      'WRONG_PEM_LABEL',
      `expected a PEM block labelled ${labels.join(' or ')}, got ${first.label}`,
    );
  }
  return first.der;
}

/** Accepts PEM text or DER bytes and returns DER. */
export function toDer(input: string | Buffer | Uint8Array, ...labels: string[]): Buffer {
  if (typeof input === 'string') return decodePem(input, ...labels);
  return Buffer.from(input);
}
