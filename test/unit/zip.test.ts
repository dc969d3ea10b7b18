import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { crc32, deflateRawSync } from 'node:zlib';
import {
  assembleZip,
  endOfCentralDirectory,
  listCentralDirectory,
  rewriteCentralDirectory,
  safeEntryName,
  splitChunkZip,
  tableCrc32,
  ZipChunkBuilder,
  ZipFormatError,
  zipPartFromChunk,
  type StreamedZipEntry,
  type ZipPart,
} from '../../lambdas/core/packaging/zip';

// `unzip` (Info-ZIP 6.0, Debian) is the oracle. Non-zero exit throws.
const MTIME = new Date('2024-01-02T03:04:06Z');
const env = { ...process.env, LC_ALL: 'C.UTF-8' };
const unzip = (...args: string[]): string =>
  execFileSync('unzip', args, { env, encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 });
const unzipBytes = (file: string, name: string): Buffer =>
  execFileSync('unzip', ['-p', file, name], { env, maxBuffer: 256 * 1024 * 1024 });

let dir: string;
let fileNo = 0;
const save = (zip: Buffer): string => {
  const file = join(dir, `z${fileNo++}.zip`);
  writeFileSync(file, zip);
  return file;
};

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'certflow-zip-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** PEM-like text: base64 of random bytes in 64-column lines (compresses to about 75 %). */
const pem = (bytes: number, label = 'CERTIFICATE'): Buffer => {
  const b64 = randomBytes(bytes).toString('base64');
  const lines = b64.match(/.{1,64}/g) ?? [];
  return Buffer.from(`-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`);
};

const collect = async (gen: AsyncIterable<Buffer>): Promise<Buffer[]> => {
  const out: Buffer[] = [];
  for await (const b of gen) out.push(b);
  return out;
};

async function* slices(buf: Buffer, size: number): AsyncGenerator<Uint8Array> {
  for (let at = 0; at < buf.length; at += size) yield new Uint8Array(buf.subarray(at, at + size));
}

/** A part served the way the S3 adapter serves it: entries as a stream of small pieces, CD fetched on demand. */
const streamedPart = (zip: Buffer, pieceSize: number): ZipPart => {
  const { entriesLength, centralDirectory } = splitChunkZip(zip);
  return {
    entriesLength,
    entries: () => slices(zip.subarray(0, entriesLength), pieceSize),
    centralDirectory: async () => Buffer.from(centralDirectory),
  };
};

type Chunk = { zip: Buffer; files: Map<string, Buffer> };
const buildChunk = (c: number, count: number, level?: number): Chunk => {
  const builder = new ZipChunkBuilder({ mtime: MTIME, level });
  const files = new Map<string, Buffer>();
  for (let i = 0; i < count; i++) {
    const base = `chunk-${c}/${safeEntryName(`device:${c}:${i}`)}`;
    for (const [name, data] of [
      [`${base}/cert.pem`, pem(500)],
      [`${base}/key.pem`, pem(120, 'PRIVATE KEY')],
    ] as const) {
      builder.add(name, data, name.endsWith('key.pem') ? { mode: 0o600 } : {});
      files.set(name, data);
    }
  }
  return { zip: builder.finish().zip, files };
};

describe('safeEntryName', () => {
  it.each([
    ['ok/plain name unchanged', 'device-01.pem', 'device-01.pem'],
    ['ok/traversal flattened to one component', '../etc/passwd', '.._etc_passwd'],
    ['ok/slash', 'a/b', 'a_b'],
    ['ok/backslash and NUL', 'a\\b\0c', 'a_b_c'],
    ['ok/CDF template common name', 'templateFoo::AB1CD79EF', 'templateFoo__AB1CD79EF'],
    ['ok/dot-dot prefixed', '..', '_..'],
    ['ok/dot prefixed', '.', '_.'],
    ['ok/empty becomes _', '', '_'],
    ['ok/unicode: one _ per code point', 'Zürich 🔒', 'Z_rich__'],
    ['ok/300 chars cut to 128', 'a'.repeat(300), 'a'.repeat(128)],
    ['ok/300 multibyte chars cut to 128 bytes', 'é'.repeat(300), '_'.repeat(128)],
  ])('%s', (_case, input, expected) => {
    const out = safeEntryName(input);
    expect(out).toBe(expected);
    expect(Buffer.byteLength(out)).toBeLessThanOrEqual(128);
    expect(out).toMatch(/^[A-Za-z0-9._-]+$/);
  });
});

describe('tableCrc32', () => {
  it('matches zlib.crc32, whole and continued', () => {
    const data = randomBytes(10_000);
    expect(tableCrc32(data)).toBe(crc32(data));
    expect(tableCrc32(data.subarray(4000), tableCrc32(data.subarray(0, 4000)))).toBe(crc32(data));
    expect(tableCrc32(Buffer.from('123456789'))).toBe(0xcbf43926);
  });
});

describe('ZipChunkBuilder', () => {
  it('writes a standalone zip that unzip tests OK and extracts byte for byte, with UTF-8 names', () => {
    const files: [string, Buffer][] = [
      ['certs/device-01/cert.pem', pem(700)],
      ['certs/Zürich-Gerät/cert.pem', pem(900)],
      ['certs/🔒/key.pem', pem(150, 'PRIVATE KEY')],
      ['empty.txt', Buffer.alloc(0)],
    ];
    const builder = new ZipChunkBuilder({ mtime: MTIME });
    for (const [name, data] of files) builder.add(name, data);
    const { zip, entryCount, entriesLength, centralDirectoryLength } = builder.finish();
    const file = save(zip);

    expect(unzip('-t', file)).toContain('No errors detected');
    for (const [name, data] of files) expect(unzipBytes(file, name).equals(data)).toBe(true);
    expect(unzip('-Z1', file).trim().split('\n')).toEqual(files.map(([n]) => n));
    expect(entryCount).toBe(4);
    expect(entriesLength + centralDirectoryLength + 22).toBe(zip.length);
    for (const e of listCentralDirectory(zip.subarray(entriesLength, entriesLength + centralDirectoryLength)))
      expect(e.flags & 0x0800).toBe(0x0800);
  });

  it('deflates compressible entries and stores incompressible, empty or level-0 ones', () => {
    const text = pem(700);
    const noise = randomBytes(700);
    const { zip } = new ZipChunkBuilder({ mtime: MTIME })
      .add('text.pem', text)
      .add('noise.bin', noise)
      .add('empty', Buffer.alloc(0))
      .add('stored.pem', text, { level: 0 })
      .finish();
    const entries = listCentralDirectory(splitChunkZip(zip).centralDirectory);
    expect(entries.map((e) => [e.name, e.method])).toEqual([
      ['text.pem', 8],
      ['noise.bin', 0],
      ['empty', 0],
      ['stored.pem', 0],
    ]);
    expect(entries[0]!.compressedSize).toBe(deflateRawSync(text, { level: 6 }).length);
    expect(entries[1]!.compressedSize).toBe(700);
    expect(entries.map((e) => e.crc)).toEqual([crc32(text), crc32(noise), 0, crc32(text)]);
    const file = save(zip);
    expect(unzip('-t', file)).toContain('No errors detected');
    expect(unzip('-v', file)).toMatch(/Defl:N[\s\S]*Stored[\s\S]*Stored[\s\S]*Stored/);
    expect(unzipBytes(file, 'noise.bin').equals(noise)).toBe(true);
  });

  it('stamps the fixed DOS time and mode, so equal input gives equal bytes', () => {
    const data = pem(300);
    const make = (): Buffer =>
      new ZipChunkBuilder({ mtime: MTIME }).add('a.pem', data).add('k.pem', data, { mode: 0o600 }).finish().zip;
    const zip = make();
    expect(make().equals(zip)).toBe(true);
    // local header: version 20, flags 0x0800, DOS time 03:04:06 and date 2024-01-02
    expect(zip.readUInt16LE(4)).toBe(20);
    expect(zip.readUInt16LE(6)).toBe(0x0800);
    expect(zip.readUInt16LE(10)).toBe((3 << 11) | (4 << 5) | 3);
    expect(zip.readUInt16LE(12)).toBe((44 << 9) | (1 << 5) | 2);
    const listing = execFileSync('zipinfo', ['-T', save(zip)], { env, encoding: 'utf8' });
    expect(listing).toMatch(/-rw-r--r--.*20240102\.030406 a\.pem/);
    expect(listing).toMatch(/-rw-------.*20240102\.030406 k\.pem/);
  });

  it('addText writes the same bytes as add of the text, stored or deflated, and unzip extracts them', () => {
    const texts = [pem(300).toString('utf8'), 'é ü — UTF-8 text\n'.repeat(40), ''];
    for (const level of [0, 6]) {
      const viaBuffers = new ZipChunkBuilder({ mtime: MTIME, level });
      const viaText = new ZipChunkBuilder({ mtime: MTIME, level });
      texts.forEach((t, i) => {
        viaBuffers.add(`d/${i}.txt`, Buffer.from(t, 'utf8'), { mode: 0o600 });
        viaText.addText(`d/${i}.txt`, t, { mode: 0o600 });
      });
      const zip = viaText.finish().zip;
      expect(zip.equals(viaBuffers.finish().zip)).toBe(true);
      const file = save(zip);
      expect(unzip('-t', file)).toContain('No errors detected');
      expect(execFileSync('unzip', ['-p', file, 'd/1.txt'], { env, encoding: 'utf8' })).toBe(texts[1]);
    }
  });

  it('writes into a buffer it is given (old bytes overwritten), or grows past it, with the same bytes', () => {
    const texts = Array.from({ length: 20 }, () => pem(700).toString('utf8'));
    const make = (buffer?: Buffer): Buffer => {
      const b = new ZipChunkBuilder({ mtime: MTIME, ...(buffer ? { buffer } : {}) });
      texts.forEach((t, i) => b.addText(`e/${i}.pem`, t));
      return b.finish().zip;
    };
    const expected = make();
    const roomy = Buffer.alloc(expected.length + 100, 0xee);
    const inRoomy = make(roomy);
    expect(inRoomy.equals(expected)).toBe(true);
    expect(inRoomy.buffer).toBe(roomy.buffer);
    expect(make(Buffer.alloc(10, 0xee)).equals(expected)).toBe(true);
  });

  it('grows past its first buffer, and a zip already returned by finish stays as it was after more entries', () => {
    const builder = new ZipChunkBuilder({ mtime: MTIME });
    // 300 entries of ~1 KB: past the builder's first 64 KB for entries and 16 KB for the central directory
    for (let i = 0; i < 300; i++) builder.addText(`e/${i}.pem`, pem(1000).toString('utf8'));
    const first = builder.finish();
    const copy = Buffer.from(first.zip);
    builder.addText('e/last.pem', 'later');
    const second = builder.finish();
    expect(first.zip.equals(copy)).toBe(true);
    expect(unzip('-t', save(first.zip))).toContain('No errors detected');
    expect(first.entryCount).toBe(300);
    expect(second.entryCount).toBe(301);
    expect(unzip('-t', save(second.zip))).toContain('No errors detected');
    // the zip starts its own ArrayBuffer and fills at least four fifths of it (so a worker thread can transfer it)
    expect(second.zip.byteOffset).toBe(0);
    expect(second.zip.buffer.byteLength).toBeLessThanOrEqual(second.zip.length * 1.25);
  });

  it.each([
    ['error/absolute path', '/etc/passwd'],
    ['error/parent segment', 'a/../b'],
    ['error/empty segment', 'a//b'],
    ['error/backslash', 'a\\b'],
    ['error/empty name', ''],
  ])('%s is rejected', (_case, name) => {
    expect(() => new ZipChunkBuilder().add(name, Buffer.from('x'))).toThrow(RangeError);
  });

  it('error/duplicate name in a chunk is rejected', () => {
    const b = new ZipChunkBuilder().add('a', Buffer.from('x'));
    expect(() => b.add('a', Buffer.from('y'))).toThrow(/duplicate/);
  });
});

describe('splitChunkZip', () => {
  it('gives the entries length and central directory of a chunk', () => {
    const builder = new ZipChunkBuilder({ mtime: MTIME }).add('a.pem', pem(100)).add('b.pem', pem(100));
    const chunk = builder.finish();
    const split = splitChunkZip(chunk.zip);
    expect(split.entriesLength).toBe(chunk.entriesLength);
    expect(split.entryCount).toBe(2);
    expect(split.centralDirectory.equals(chunk.zip.subarray(chunk.entriesLength, chunk.zip.length - 22))).toBe(true);
  });

  it('reads ZIP64 end records (and unzip accepts them)', () => {
    const chunk = new ZipChunkBuilder({ mtime: MTIME }).add('a.pem', pem(100)).add('b.pem', pem(100)).finish();
    const cd = chunk.zip.subarray(chunk.entriesLength, chunk.entriesLength + chunk.centralDirectoryLength);
    const end = endOfCentralDirectory({
      entryCount: 2,
      centralDirectoryOffset: chunk.entriesLength,
      centralDirectorySize: cd.length,
      zip64: true,
    });
    const zip64 = Buffer.concat([chunk.zip.subarray(0, chunk.entriesLength), cd, end]);
    expect(zip64.length).toBe(chunk.zip.length + 76);
    expect(splitChunkZip(zip64)).toEqual({ entriesLength: chunk.entriesLength, centralDirectory: cd, entryCount: 2 });
    expect(unzip('-t', save(zip64))).toContain('No errors detected');
  });

  it.each([
    ['error/not a zip', Buffer.from('hello, this is not a zip file at all')],
    ['error/truncated', new ZipChunkBuilder().add('a', Buffer.from('abc')).finish().zip.subarray(0, 60)],
    ['error/too short', Buffer.alloc(3)],
  ])('%s throws ZipFormatError', (_case, zip) => {
    expect(() => splitChunkZip(zip)).toThrow(ZipFormatError);
  });

  it('error/an end record whose count disagrees with the central directory', () => {
    const zip = Buffer.from(new ZipChunkBuilder().add('a', Buffer.from('abc')).finish().zip);
    zip.writeUInt16LE(2, zip.length - 12);
    expect(() => splitChunkZip(zip)).toThrow(/counts 2 entries, found 1/);
  });
});

describe('assembleZip', () => {
  it('merges 3 chunk zips: unzip tests OK, lists every entry with its size, content and offsets round-trip', async () => {
    const chunks = [0, 1, 2].map((c) => buildChunk(c, 5 + c));
    const parts = chunks.map((c) => zipPartFromChunk(c.zip));
    const merged = Buffer.concat(await collect(assembleZip(() => parts, { mtime: MTIME })));
    const file = save(merged);

    expect(unzip('-t', file)).toContain('No errors detected');
    const all = new Map(chunks.flatMap((c) => [...c.files]));
    const listed = unzip('-l', file).trim().split('\n');
    expect(listed.at(-1)).toMatch(new RegExp(`\\s${all.size} files$`));
    for (const [name, data] of all) {
      expect(listed.some((l) => l.endsWith(` ${name}`) && l.trim().startsWith(`${data.length} `))).toBe(true);
    }
    for (const name of ['chunk-0/device_0_0/cert.pem', 'chunk-2/device_2_6/key.pem'])
      expect(unzipBytes(file, name).equals(all.get(name)!)).toBe(true);

    // every central record points at the local header of the same name; chunk k starts where chunk k-1 ended
    const { centralDirectory, entryCount, entriesLength } = splitChunkZip(merged);
    expect(entryCount).toBe(all.size);
    expect(entriesLength).toBe(chunks.reduce((n, c) => n + splitChunkZip(c.zip).entriesLength, 0));
    const entries = listCentralDirectory(centralDirectory);
    for (const e of entries) {
      expect(merged.readUInt32LE(e.localHeaderOffset)).toBe(0x04034b50);
      const nameLength = merged.readUInt16LE(e.localHeaderOffset + 26);
      expect(merged.toString('utf8', e.localHeaderOffset + 30, e.localHeaderOffset + 30 + nameLength)).toBe(e.name);
    }
    const firstOf = (c: number): number => entries.find((e) => e.name.startsWith(`chunk-${c}/`))!.localHeaderOffset;
    expect(firstOf(1)).toBe(splitChunkZip(chunks[0]!.zip).entriesLength);
    expect(firstOf(2)).toBe(firstOf(1) + splitChunkZip(chunks[1]!.zip).entriesLength);
    expect(
      entries.filter((e) => e.name.endsWith('key.pem')).every((e) => e.externalAttributes >>> 16 === 0o100600),
    ).toBe(true);
  });

  it('streams: yields the parts piece by piece, never the whole zip in one buffer', async () => {
    const chunks = [0, 1, 2, 3].map((c) => buildChunk(c, 20));
    const pieces = await collect(assembleZip(() => chunks.map((c) => streamedPart(c.zip, 4096))));
    const total = pieces.reduce((n, p) => n + p.length, 0);
    const largestCd = Math.max(...chunks.map((c) => splitChunkZip(c.zip).centralDirectory.length));
    expect(pieces.length).toBeGreaterThan(total / 4096);
    expect(Math.max(...pieces.map((p) => p.length))).toBeLessThanOrEqual(Math.max(4096, largestCd));
    expect(unzip('-t', save(Buffer.concat(pieces)))).toContain('No errors detected');
  });

  it('passes references to entries on unread, in their place: resolved, the zip is the one of the bytes', async () => {
    const chunks = [0, 1, 2].map((c) => buildChunk(c, 6));
    const byRef = chunks.map((c, i): ZipPart<number> => {
      const { entriesLength, centralDirectory } = splitChunkZip(c.zip);
      return {
        entriesLength,
        entries: () => (i === 1 ? c.zip.subarray(0, entriesLength) : { reference: i, length: entriesLength }),
        centralDirectory: () => centralDirectory,
      };
    });
    const out: (Buffer | { reference: number; length: number })[] = [];
    for await (const piece of assembleZip(() => byRef, { mtime: MTIME })) out.push(piece);
    expect(out.filter((p) => !(p instanceof Uint8Array)).map((p) => (p as { reference: number }).reference)).toEqual([
      0, 2,
    ]);
    const resolved = Buffer.concat(
      out.map((p) =>
        p instanceof Uint8Array
          ? p
          : chunks[p.reference]!.zip.subarray(0, splitChunkZip(chunks[p.reference]!.zip).entriesLength),
      ),
    );
    const plain = Buffer.concat(
      await collect(assembleZip(() => chunks.map((c) => zipPartFromChunk(c.zip)), { mtime: MTIME })),
    );
    expect(resolved.equals(plain)).toBe(true);
    expect(unzip('-t', save(resolved))).toContain('No errors detected');
  });

  it('appends a streamed trailing entry of a few MB with a data descriptor', async () => {
    const chunk = buildChunk(0, 3);
    const rows: Buffer[] = [];
    async function* manifest(): AsyncGenerator<Uint8Array> {
      yield Buffer.from('certificateId,commonName,serial\n');
      for (let i = 0; i < 60_000; i++) {
        const row = Buffer.from(`${i},device-${i},${randomBytes(8).toString('hex')}\n`);
        rows.push(row);
        yield row;
      }
    }
    const trailing: StreamedZipEntry[] = [{ name: 'manifest.csv', content: manifest() }];
    const pieces = await collect(
      assembleZip(() => [zipPartFromChunk(chunk.zip)], { trailingEntries: trailing, mtime: MTIME }),
    );
    const merged = Buffer.concat(pieces);
    const file = save(merged);
    const expected = Buffer.concat([Buffer.from('certificateId,commonName,serial\n'), ...rows]);
    expect(expected.length).toBeGreaterThan(2_000_000);

    expect(unzip('-t', file)).toContain('No errors detected');
    expect(unzipBytes(file, 'manifest.csv').equals(expected)).toBe(true);
    expect(
      unzipBytes(file, 'chunk-0/device_0_2/cert.pem').equals(chunk.files.get('chunk-0/device_0_2/cert.pem')!),
    ).toBe(true);
    const manifestEntry = listCentralDirectory(splitChunkZip(merged).centralDirectory).at(-1)!;
    expect(manifestEntry).toMatchObject({
      name: 'manifest.csv',
      method: 8,
      size: expected.length,
      crc: crc32(expected),
    });
    expect(manifestEntry.flags & 0x0008).toBe(0x0008);
    // local header: ZIP64 extra with zero sizes; after the data, a 24-byte ZIP64 data descriptor
    const at = manifestEntry.localHeaderOffset;
    expect(merged.readUInt32LE(at + 18)).toBe(0xffffffff);
    expect(merged.readUInt16LE(at + 28)).toBe(20);
    const descriptor = at + 30 + 'manifest.csv'.length + 20 + manifestEntry.compressedSize;
    expect(merged.readUInt32LE(descriptor)).toBe(0x08074b50);
    expect(merged.readUInt32LE(descriptor + 4)).toBe(crc32(expected));
    expect(merged.readBigUInt64LE(descriptor + 8)).toBe(BigInt(manifestEntry.compressedSize));
    expect(merged.readBigUInt64LE(descriptor + 16)).toBe(BigInt(expected.length));
  });

  it('error/a part whose entries are shorter than entriesLength', async () => {
    const part = zipPartFromChunk(buildChunk(0, 2).zip);
    const short: ZipPart = {
      ...part,
      entries: () => slices(Buffer.from(part.entries() as Uint8Array).subarray(1), 64),
    };
    await expect(collect(assembleZip(() => [short]))).rejects.toThrow(ZipFormatError);
  });

  it('error/a part whose central directory points past its entries', async () => {
    const part = zipPartFromChunk(buildChunk(0, 2).zip);
    const tiny: ZipPart = { ...part, entriesLength: 10, entries: () => Buffer.alloc(10) };
    await expect(collect(assembleZip(() => [tiny]))).rejects.toThrow(/past the entries/);
  });

  it('closes the trailing content stream when the consumer stops early', async () => {
    let closed = false;
    async function* endless(): AsyncGenerator<Uint8Array> {
      try {
        for (let i = 0; ; i++) yield randomBytes(16 * 1024);
      } finally {
        closed = true;
      }
    }
    let seen = 0;
    for await (const piece of assembleZip(() => [], { trailingEntries: [{ name: 'm.bin', content: endless() }] })) {
      seen += piece.length;
      if (seen > 1_000_000) break;
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(closed).toBe(true);
  });

  it('error/a failing trailing content stream rejects with its error', async () => {
    async function* failing(): AsyncGenerator<Uint8Array> {
      yield Buffer.from('a,b\n');
      throw new Error('manifest source failed');
    }
    const gen = assembleZip(() => [], { trailingEntries: [{ name: 'manifest.csv', content: failing() }] });
    await expect(collect(gen)).rejects.toThrow('manifest source failed');
  });

  it('writes ZIP64 end records past 65,535 entries (70 chunks x 1,000)', async () => {
    const chunks = Array.from({ length: 70 }, (_, c) => {
      const b = new ZipChunkBuilder({ mtime: MTIME, level: 0 });
      for (let i = 0; i < 1000; i++) b.add(`c${c}/${i}.txt`, Buffer.from(`${c}:${i}`));
      return b.finish().zip;
    });
    const merged = Buffer.concat(await collect(assembleZip(() => chunks.map((zip) => zipPartFromChunk(zip)))));
    const file = save(merged);
    expect(unzip('-tq', file)).toContain('No errors detected');
    expect(unzip('-l', file).trim().split('\n').at(-1)).toMatch(/\s70000 files$/);
    expect(unzipBytes(file, 'c69/999.txt').toString()).toBe('69:999');
    // classic end record reads 0xFFFF entries; the ZIP64 record holds the count
    expect(merged.readUInt16LE(merged.length - 12)).toBe(0xffff);
    expect(merged.readUInt32LE(merged.length - 22 - 20)).toBe(0x07064b50);
    expect(splitChunkZip(merged).entryCount).toBe(70_000);
  });
});

describe('rewriteCentralDirectory', () => {
  const chunk = new ZipChunkBuilder({ mtime: MTIME }).add('a.pem', pem(200)).add('b.pem', pem(300)).finish();
  const { centralDirectory: cd } = splitChunkZip(chunk.zip);
  const original = listCentralDirectory(cd);

  it('moves offsets by the base and keeps 32-bit records below 0xFFFFFFFF', () => {
    const { centralDirectory, entryCount } = rewriteCentralDirectory(cd, 1000);
    expect(entryCount).toBe(2);
    expect(centralDirectory.length).toBe(cd.length);
    expect(listCentralDirectory(centralDirectory)).toEqual(
      original.map((e) => ({ ...e, localHeaderOffset: e.localHeaderOffset + 1000 })),
    );
  });

  it('switches a record to a ZIP64 extra field once its offset reaches 0xFFFFFFFF', () => {
    // entry a lands exactly on 0xFFFFFFFF, entry b above it
    const base = 0xffffffff;
    const { centralDirectory } = rewriteCentralDirectory(cd, base);
    expect(centralDirectory.length).toBe(cd.length + 2 * 12);
    let at = 0;
    for (const e of original) {
      expect(centralDirectory.readUInt32LE(at)).toBe(0x02014b50);
      expect(centralDirectory.readUInt16LE(at + 6)).toBe(45); // version needed
      expect(centralDirectory.readUInt16LE(at + 4) & 0xff).toBe(45); // version made by
      expect(centralDirectory.readUInt32LE(at + 42)).toBe(0xffffffff);
      const nameLength = centralDirectory.readUInt16LE(at + 28);
      expect(centralDirectory.readUInt16LE(at + 30)).toBe(12);
      const extra = at + 46 + nameLength;
      expect(centralDirectory.readUInt16LE(extra)).toBe(0x0001);
      expect(centralDirectory.readUInt16LE(extra + 2)).toBe(8);
      expect(centralDirectory.readBigUInt64LE(extra + 4)).toBe(BigInt(base) + BigInt(e.localHeaderOffset));
      at = extra + 12;
    }
    expect(listCentralDirectory(centralDirectory).map((e) => [e.name, e.crc, e.size, e.zip64])).toEqual(
      original.map((e) => [e.name, e.crc, e.size, true]),
    );
  });

  it('keeps records below the boundary 32-bit when later ones cross it', () => {
    const second = original[1]!.localHeaderOffset;
    const base = 0xffffffff - second + 1; // a stays below, b crosses
    const entries = listCentralDirectory(rewriteCentralDirectory(cd, base).centralDirectory);
    expect(entries.map((e) => [e.zip64, e.localHeaderOffset])).toEqual([
      [false, base],
      [true, 0xffffffff + 1],
    ]);
  });

  it('moves a record that already carries a ZIP64 offset', () => {
    const once = rewriteCentralDirectory(cd, 2 ** 33).centralDirectory;
    const twice = listCentralDirectory(rewriteCentralDirectory(once, 5).centralDirectory);
    expect(twice.map((e) => e.localHeaderOffset)).toEqual(original.map((e) => 2 ** 33 + 5 + e.localHeaderOffset));
  });

  it('error/a record outside the part', () => {
    expect(() => rewriteCentralDirectory(cd, 0, original[1]!.localHeaderOffset)).toThrow(ZipFormatError);
    expect(() => rewriteCentralDirectory(cd.subarray(0, 50), 0)).toThrow(ZipFormatError);
  });
});

describe('endOfCentralDirectory', () => {
  it('writes only the classic 22-byte record when everything fits', () => {
    const end = endOfCentralDirectory({ entryCount: 3, centralDirectoryOffset: 1000, centralDirectorySize: 150 });
    expect(end.toString('hex')).toBe('504b0506' + '0000' + '0000' + '0300' + '0300' + '96000000' + 'e8030000' + '0000');
  });

  it.each([
    ['asked', { entryCount: 3, centralDirectoryOffset: 1000, centralDirectorySize: 150, zip64: true }, [3, 150, 1000]],
    [
      'count 65535',
      { entryCount: 65_535, centralDirectoryOffset: 1000, centralDirectorySize: 150 },
      [0xffff, 150, 1000],
    ],
    [
      'offset above 4 GiB',
      { entryCount: 3, centralDirectoryOffset: 2 ** 33, centralDirectorySize: 150 },
      [3, 150, 0xffffffff],
    ],
  ])('writes ZIP64 records when %s', (_case, input, [count, size, offset]) => {
    const end = endOfCentralDirectory(input);
    expect(end.length).toBe(56 + 20 + 22);
    expect(end.readUInt32LE(0)).toBe(0x06064b50);
    expect(end.readBigUInt64LE(4)).toBe(44n);
    expect(end.readUInt16LE(14)).toBe(45);
    expect(end.readBigUInt64LE(24)).toBe(BigInt(input.entryCount));
    expect(end.readBigUInt64LE(32)).toBe(BigInt(input.entryCount));
    expect(end.readBigUInt64LE(40)).toBe(BigInt(input.centralDirectorySize));
    expect(end.readBigUInt64LE(48)).toBe(BigInt(input.centralDirectoryOffset));
    expect(end.readUInt32LE(56)).toBe(0x07064b50);
    expect(end.readBigUInt64LE(64)).toBe(BigInt(input.centralDirectoryOffset + input.centralDirectorySize));
    expect(end.readUInt32LE(72)).toBe(1);
    expect(end.readUInt32LE(76)).toBe(0x06054b50);
    expect([end.readUInt16LE(86), end.readUInt32LE(88), end.readUInt32LE(92)]).toEqual([count, size, offset]);
  });
});
