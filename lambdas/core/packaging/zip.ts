import { Readable, pipeline } from 'node:stream';
import * as zlib from 'node:zlib';

/**
 * A minimal, dependency-free ZIP writer for bulk certificate batches (APPNOTE 6.3.x subset).
 *
 * Two stages, so that a batch of millions of certificates never sits in one process's memory:
 * 1. Each chunk worker builds a standalone chunk zip with {@link ZipChunkBuilder} (a few thousand small PEMs) and
 *    stores it with its `entriesLength` and `centralDirectoryLength`.
 * 2. One assembler streams the merged zip with {@link assembleZip}: every chunk's local-entries section copied
 *    verbatim, then every chunk's central directory with offsets moved by the chunk's base, then (optionally)
 *    streamed entries such as a manifest, then ZIP64 end records when needed. Memory is bounded by one chunk's
 *    central directory plus the stream buffers, whatever the number of chunks.
 *
 * Format choices: names are UTF-8 (general-purpose bit 11); methods are deflate (8) or store (0), store when
 * deflate does not shrink the data; timestamps are fixed DOS times (UTC fields) so equal input gives equal bytes;
 * "version made by" is Unix (3) with 2.0, or 4.5 once ZIP64 fields are used; external attributes carry a Unix
 * mode (0644 unless told). ZIP64 fields appear only where a value does not fit (or is 0xFFFF/0xFFFFFFFF), except
 * for streamed entries, whose local header always carries a ZIP64 extra (zero sizes) and whose data descriptor
 * has 64-bit sizes, as Python's zipfile writes them. No encryption, no comments, no directory entries, one disk.
 */

/** A zip we are asked to read (a chunk zip, a central directory, a part's entries) is malformed or inconsistent. */
export class ZipFormatError extends Error {
  override readonly name = 'ZipFormatError';

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
  }
}

const MAX16 = 0xffff;
const MAX32 = 0xffffffff;

const SIG_LOCAL = 0x04034b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_DATA_DESCRIPTOR = 0x08074b50;
const SIG_ZIP64_EOCD = 0x06064b50;
const SIG_ZIP64_LOCATOR = 0x07064b50;
const SIG_EOCD = 0x06054b50;

const FLAG_DATA_DESCRIPTOR = 0x0008;
const FLAG_UTF8 = 0x0800;
const METHOD_STORE = 0;
const METHOD_DEFLATE = 8;
const VERSION_DEFAULT = 20;
const VERSION_ZIP64 = 45;
const HOST_UNIX = 3 << 8;
const ZIP64_EXTRA_ID = 0x0001;

const LOCAL_HEADER_SIZE = 30;
const CENTRAL_HEADER_SIZE = 46;
const EOCD_SIZE = 22;
const ZIP64_EOCD_SIZE = 56;
const ZIP64_LOCATOR_SIZE = 20;
const ZIP64_DATA_DESCRIPTOR_SIZE = 24;
const DEFAULT_MODE = 0o644;
const DEFAULT_LEVEL = 6;
const STREAM_CHUNK = 64 * 1024;

// ---------------------------------------------------------------------------------------------------------------
// CRC-32

let crcTable: Int32Array | undefined;

/**
 * Table-driven CRC-32 (IEEE), the fallback when `zlib.crc32` (Node ≥ 20.15) is missing.
 * `value` continues a previous CRC, as `zlib.crc32(data, value)` does.
 * @internal exported for tests
 */
export function tableCrc32(data: Uint8Array, value = 0): number {
  if (!crcTable) {
    crcTable = new Int32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c;
    }
  }
  let crc = ~value;
  for (let i = 0; i < data.length; i++) crc = crcTable[(crc ^ data[i]!) & 0xff]! ^ (crc >>> 8);
  return ~crc >>> 0;
}

const crc32: (data: Uint8Array, value?: number) => number =
  typeof zlib.crc32 === 'function' ? (data, value) => zlib.crc32(data, value) : tableCrc32;

// ---------------------------------------------------------------------------------------------------------------
// Entry names and timestamps

/**
 * Maps any string (a certificate's common name, a thing name) to one safe path component for a zip entry:
 * every code point outside `[A-Za-z0-9._-]` becomes `_` (so no `/`, `\`, `:`, NUL or non-ASCII survives),
 * the result is cut to 128 characters (= 128 bytes, it is ASCII), an empty result becomes `_`, and `.` / `..`
 * get a `_` prefix. Distinct inputs can map to the same output (`a/b` and `a:b`): callers that need unique
 * names add something unique (a serial, an index).
 */
export function safeEntryName(name: string): string {
  const out = name.replace(/[^A-Za-z0-9._-]/gu, '_').slice(0, 128);
  if (out === '') return '_';
  return out === '.' || out === '..' ? `_${out}` : out;
}

/** Checks an entry path for the builder: relative, `/`-separated, no empty, `.` or `..` segment, no `\` or NUL. */
function encodeEntryPath(name: string): Buffer {
  const segments = name.split('/');
  if (name.includes('\\') || name.includes('\0') || segments.some((s) => s === '' || s === '.' || s === '..'))
    throw new RangeError(`unsafe zip entry name: ${JSON.stringify(name.slice(0, 200))}`);
  const bytes = Buffer.from(name, 'utf8');
  if (bytes.length > MAX16) throw new RangeError('zip entry name longer than 65535 bytes');
  return bytes;
}

interface DosStamp {
  readonly date: number;
  readonly time: number;
}

/** DOS date and time of `d` from its UTC fields, clamped to 1980-01-01 … 2107-12-31 (2-second resolution). */
function dosStamp(d: Date): DosStamp {
  if (Number.isNaN(d.getTime())) throw new RangeError('invalid zip entry mtime');
  const year = d.getUTCFullYear();
  if (year < 1980) return { date: (1 << 5) | 1, time: 0 };
  if (year > 2107) return { date: (127 << 9) | (12 << 5) | 31, time: (23 << 11) | (59 << 5) | 29 };
  return {
    date: ((year - 1980) << 9) | ((d.getUTCMonth() + 1) << 5) | d.getUTCDate(),
    time: (d.getUTCHours() << 11) | (d.getUTCMinutes() << 5) | (d.getUTCSeconds() >> 1),
  };
}

function checkLevel(level: number): number {
  if (!Number.isInteger(level) || level < 0 || level > 9) throw new RangeError(`deflate level must be 0-9: ${level}`);
  return level;
}

// ---------------------------------------------------------------------------------------------------------------
// Records

interface EntryRecord {
  name: Buffer;
  flags: number;
  method: number;
  stamp: DosStamp;
  crc: number;
  compressedSize: number;
  size: number;
  /** Offset of the local header from the start of the zip. */
  offset: number;
  mode: number;
  /** Version needed by the local header (45 when it carries a ZIP64 extra). */
  localVersion: number;
}

const writeU64 = (b: Buffer, value: number, at: number): void => {
  b.writeBigUInt64LE(BigInt(value), at);
};

const asBuffer = (u: Uint8Array): Buffer => (Buffer.isBuffer(u) ? u : Buffer.from(u.buffer, u.byteOffset, u.length));

const readU64 = (b: Buffer, at: number): number => {
  const v = b.readBigUInt64LE(at);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new ZipFormatError('zip64 value beyond 2^53');
  return Number(v);
};

/** Local file header. With `zip64`, both sizes go to a ZIP64 extra field (as APPNOTE 4.5.3 asks) and read -1. */
function localHeader(e: EntryRecord, zip64: boolean): Buffer {
  const b = Buffer.alloc(localHeaderLength(e, zip64));
  writeLocalHeader(b, 0, e, zip64);
  return b;
}

const localHeaderLength = (e: EntryRecord, zip64: boolean): number =>
  LOCAL_HEADER_SIZE + e.name.length + (zip64 ? 20 : 0);

/** Writes the local header of `e` at `at` of `b` (which has room); returns its length. */
function writeLocalHeader(b: Buffer, at: number, e: EntryRecord, zip64: boolean): number {
  const extraLength = zip64 ? 20 : 0;
  b.writeUInt32LE(SIG_LOCAL, at);
  b.writeUInt16LE(zip64 ? VERSION_ZIP64 : VERSION_DEFAULT, at + 4);
  b.writeUInt16LE(e.flags, at + 6);
  b.writeUInt16LE(e.method, at + 8);
  b.writeUInt16LE(e.stamp.time, at + 10);
  b.writeUInt16LE(e.stamp.date, at + 12);
  b.writeUInt32LE(e.crc, at + 14);
  b.writeUInt32LE(zip64 ? MAX32 : e.compressedSize, at + 18);
  b.writeUInt32LE(zip64 ? MAX32 : e.size, at + 22);
  b.writeUInt16LE(e.name.length, at + 26);
  b.writeUInt16LE(extraLength, at + 28);
  e.name.copy(b, at + LOCAL_HEADER_SIZE);
  if (zip64) {
    const x = at + LOCAL_HEADER_SIZE + e.name.length;
    b.writeUInt16LE(ZIP64_EXTRA_ID, x);
    b.writeUInt16LE(16, x + 2);
    writeU64(b, e.size, x + 4);
    writeU64(b, e.compressedSize, x + 12);
  }
  return LOCAL_HEADER_SIZE + e.name.length + extraLength;
}

/** Central directory file header; a ZIP64 extra holds whichever of size, compressed size, offset does not fit. */
function centralRecord(e: EntryRecord): Buffer {
  const b = Buffer.alloc(centralRecordLength(e));
  writeCentralRecord(b, 0, e);
  return b;
}

/** Values of `e` that need a ZIP64 extra in its central record, in the order APPNOTE gives them. */
const zip64Values = (e: EntryRecord): number[] => [e.size, e.compressedSize, e.offset].filter((v) => v >= MAX32);

const centralRecordLength = (e: EntryRecord): number => {
  const big = zip64Values(e).length;
  return CENTRAL_HEADER_SIZE + e.name.length + (big ? 4 + 8 * big : 0);
};

/** Writes the central record of `e` at `at` of `b` (which has room); returns its length. */
function writeCentralRecord(b: Buffer, at: number, e: EntryRecord): number {
  const big = zip64Values(e);
  const extraLength = big.length ? 4 + 8 * big.length : 0;
  const version = Math.max(e.localVersion, extraLength ? VERSION_ZIP64 : VERSION_DEFAULT);
  b.fill(0, at, at + CENTRAL_HEADER_SIZE);
  b.writeUInt32LE(SIG_CENTRAL, at);
  b.writeUInt16LE(HOST_UNIX | version, at + 4);
  b.writeUInt16LE(version, at + 6);
  b.writeUInt16LE(e.flags, at + 8);
  b.writeUInt16LE(e.method, at + 10);
  b.writeUInt16LE(e.stamp.time, at + 12);
  b.writeUInt16LE(e.stamp.date, at + 14);
  b.writeUInt32LE(e.crc, at + 16);
  b.writeUInt32LE(Math.min(e.compressedSize, MAX32), at + 20);
  b.writeUInt32LE(Math.min(e.size, MAX32), at + 24);
  b.writeUInt16LE(e.name.length, at + 28);
  b.writeUInt16LE(extraLength, at + 30);
  // comment length, disk number start, internal attributes: 0
  b.writeUInt32LE(((0o100000 | (e.mode & 0o7777)) << 16) >>> 0, at + 38);
  b.writeUInt32LE(Math.min(e.offset, MAX32), at + 42);
  e.name.copy(b, at + CENTRAL_HEADER_SIZE);
  if (extraLength) {
    let x = at + CENTRAL_HEADER_SIZE + e.name.length;
    b.writeUInt16LE(ZIP64_EXTRA_ID, x);
    b.writeUInt16LE(extraLength - 4, x + 2);
    x += 4;
    for (const v of big) {
      writeU64(b, v, x);
      x += 8;
    }
  }
  return CENTRAL_HEADER_SIZE + e.name.length + extraLength;
}

export interface EndOfCentralDirectoryInput {
  entryCount: number;
  centralDirectoryOffset: number;
  centralDirectorySize: number;
  /** Write the ZIP64 end record and locator even when every value fits. */
  zip64?: boolean;
}

/**
 * The end of a zip: ZIP64 end-of-central-directory record + locator when asked or when the entry count reaches
 * 0xFFFF or the central directory's offset or size reaches 0xFFFFFFFF, then the classic end record, whose
 * overflowing fields read 0xFFFF / 0xFFFFFFFF. The ZIP64 record is placed right after the central directory.
 * @internal exported for tests
 */
export function endOfCentralDirectory(input: EndOfCentralDirectoryInput): Buffer {
  const { entryCount, centralDirectoryOffset: cdOffset, centralDirectorySize: cdSize } = input;
  const zip64 = input.zip64 === true || entryCount >= MAX16 || cdOffset >= MAX32 || cdSize >= MAX32;
  const b = Buffer.alloc((zip64 ? ZIP64_EOCD_SIZE + ZIP64_LOCATOR_SIZE : 0) + EOCD_SIZE);
  let at = 0;
  if (zip64) {
    b.writeUInt32LE(SIG_ZIP64_EOCD, 0);
    writeU64(b, ZIP64_EOCD_SIZE - 12, 4);
    b.writeUInt16LE(HOST_UNIX | VERSION_ZIP64, 12);
    b.writeUInt16LE(VERSION_ZIP64, 14);
    // number of this disk, disk where the central directory starts: 0
    writeU64(b, entryCount, 24);
    writeU64(b, entryCount, 32);
    writeU64(b, cdSize, 40);
    writeU64(b, cdOffset, 48);
    b.writeUInt32LE(SIG_ZIP64_LOCATOR, 56);
    // disk with the ZIP64 end record: 0
    writeU64(b, cdOffset + cdSize, 64);
    b.writeUInt32LE(1, 72); // total number of disks
    at = ZIP64_EOCD_SIZE + ZIP64_LOCATOR_SIZE;
  }
  b.writeUInt32LE(SIG_EOCD, at);
  // number of this disk, disk where the central directory starts: 0
  b.writeUInt16LE(Math.min(entryCount, MAX16), at + 8);
  b.writeUInt16LE(Math.min(entryCount, MAX16), at + 10);
  b.writeUInt32LE(Math.min(cdSize, MAX32), at + 12);
  b.writeUInt32LE(Math.min(cdOffset, MAX32), at + 16);
  // comment length: 0
  return b;
}

// ---------------------------------------------------------------------------------------------------------------
// Chunk builder

export interface ZipChunkBuilderOptions {
  /** Deflate level 0-9 for entries that do not say; 0 stores. Default 6. */
  level?: number;
  /** Modification time of entries that do not say; default: the time the builder was made. */
  mtime?: Date;
  /**
   * A buffer to write the entries into (its bytes are overwritten), e.g. one a previous chunk's zip used: the
   * builder grows past it when it needs to.
   */
  buffer?: Buffer;
}

export interface ZipEntryOptions {
  /** Deflate level 0-9; 0 stores. The entry is stored anyway when deflate does not make it smaller. */
  level?: number;
  mtime?: Date;
  /** Unix permission bits for extraction, default 0o644 (use 0o600 for private keys). */
  mode?: number;
}

export interface ChunkZip {
  /** A complete, standalone zip. */
  zip: Buffer;
  /** Length of the local-entries section `zip[0, entriesLength)`, which {@link assembleZip} copies verbatim. */
  entriesLength: number;
  /** The central directory is `zip[entriesLength, entriesLength + centralDirectoryLength)`. */
  centralDirectoryLength: number;
  entryCount: number;
}

/**
 * Builds one chunk zip in memory: {@link add} compresses an entry and appends its local header and data;
 * {@link finish} returns the zip with its central directory and end records. Entries keep the order of `add`.
 * Names are `/`-separated relative paths (see {@link safeEntryName} for a component) and unique within a chunk.
 */
export class ZipChunkBuilder {
  private readonly level: number;
  private readonly stamp: DosStamp;
  /**
   * The local entries, written in place into one buffer that grows by doubling, and the central directory into a
   * second: a chunk of 1,000 certificates is a few buffers, not 9,000 (headers, records and file data each).
   */
  private entries: Buffer;
  private central: Buffer;
  private readonly names = new Set<string>();
  private offset = 0;
  private centralLength = 0;
  private count = 0;
  /** `finish` handed out a view of `entries`: the next `add` writes into a copy. */
  private shared = false;

  constructor(options: ZipChunkBuilderOptions = {}) {
    this.level = checkLevel(options.level ?? DEFAULT_LEVEL);
    this.stamp = dosStamp(options.mtime ?? new Date());
    this.entries = options.buffer ?? Buffer.allocUnsafeSlow(INITIAL_CAPACITY);
    this.central = Buffer.allocUnsafeSlow(INITIAL_CAPACITY / 4);
  }

  get entryCount(): number {
    return this.count;
  }

  /** Bytes of the local-entries section so far. */
  get entriesLength(): number {
    return this.offset;
  }

  add(name: string, data: Uint8Array, options: ZipEntryOptions = {}): this {
    const level = checkLevel(options.level ?? this.level);
    let method = METHOD_STORE;
    let body = data;
    if (level > 0 && data.length > 0) {
      const deflated = zlib.deflateRawSync(data, { level });
      if (deflated.length < data.length) {
        method = METHOD_DEFLATE;
        body = deflated;
      }
    }
    const record = this.record(name, method, crc32(data), body.length, data.length, options);
    const zip64 = record.localVersion === VERSION_ZIP64;
    const headerLength = localHeaderLength(record, zip64);
    this.reserve(headerLength + body.length);
    writeLocalHeader(this.entries, this.offset, record, zip64);
    this.entries.set(body, this.offset + headerLength);
    return this.commit(name, record, headerLength + body.length);
  }

  /**
   * `add` for text (a PEM): with level 0 the text is written straight into the zip, with no Buffer of its own.
   */
  addText(name: string, text: string, options: ZipEntryOptions = {}): this {
    if (checkLevel(options.level ?? this.level) > 0) return this.add(name, Buffer.from(text, 'utf8'), options);
    const size = Buffer.byteLength(text, 'utf8');
    const record = this.record(name, METHOD_STORE, 0, size, size, options);
    const zip64 = record.localVersion === VERSION_ZIP64;
    const headerLength = localHeaderLength(record, zip64);
    this.reserve(headerLength + size);
    // the data first, after the room its header needs, then the header with the data's CRC
    const dataAt = this.offset + headerLength;
    this.entries.write(text, dataAt, size, 'utf8');
    record.crc = crc32(this.entries.subarray(dataAt, dataAt + size));
    writeLocalHeader(this.entries, this.offset, record, zip64);
    return this.commit(name, record, headerLength + size);
  }

  private record(
    name: string,
    method: number,
    crc: number,
    compressedSize: number,
    size: number,
    options: ZipEntryOptions,
  ): EntryRecord {
    const nameBytes = encodeEntryPath(name);
    if (this.names.has(name)) throw new RangeError(`duplicate zip entry name: ${JSON.stringify(name)}`);
    const zip64 = size >= MAX32 || compressedSize >= MAX32;
    return {
      name: nameBytes,
      flags: FLAG_UTF8,
      method,
      stamp: options.mtime ? dosStamp(options.mtime) : this.stamp,
      crc,
      compressedSize,
      size,
      offset: this.offset,
      mode: options.mode ?? DEFAULT_MODE,
      localVersion: zip64 ? VERSION_ZIP64 : VERSION_DEFAULT,
    };
  }

  /** Room for `length` more bytes of entries (and a private copy if `finish` handed the buffer out). */
  private reserve(length: number): void {
    const need = this.offset + length;
    if (!this.shared && need <= this.entries.length) return;
    this.entries = grown(this.entries, this.offset, need);
    this.shared = false;
  }

  private commit(name: string, record: EntryRecord, length: number): this {
    const centralLength = centralRecordLength(record);
    if (this.centralLength + centralLength > this.central.length) {
      this.central = grown(this.central, this.centralLength, this.centralLength + centralLength);
    }
    writeCentralRecord(this.central, this.centralLength, record);
    this.centralLength += centralLength;
    this.names.add(name);
    this.offset += length;
    this.count++;
    return this;
  }

  /**
   * The zip so far; the builder stays usable (a later `finish` includes later entries). The zip may be a view of
   * a larger buffer (at most a quarter more), starting at its offset 0, so a worker thread can transfer it.
   */
  finish(): ChunkZip {
    const end = endOfCentralDirectory({
      entryCount: this.count,
      centralDirectoryOffset: this.offset,
      centralDirectorySize: this.centralLength,
    });
    const total = this.offset + this.centralLength + end.length;
    let out = this.entries;
    if (total > out.length || out.length > total + zipBufferSlack(total)) out = grown(out, this.offset, total, total);
    this.central.copy(out, this.offset, 0, this.centralLength);
    end.copy(out, this.offset + this.centralLength);
    this.entries = out;
    this.shared = true;
    return {
      zip: out.subarray(0, total),
      entriesLength: this.offset,
      centralDirectoryLength: this.centralLength,
      entryCount: this.count,
    };
  }
}

/**
 * The most bytes a chunk zip's buffer may hold past the zip (a quarter of it): finish() copies the zip into a buffer
 * of its own size when there would be more, so a worker thread can hand the buffer over instead of copying it.
 */
export const zipBufferSlack = (zipLength: number): number => zipLength >> 2;

/** Bytes a builder starts with (it doubles as it needs). */
const INITIAL_CAPACITY = 64 * 1024;

/** A copy of `b`'s first `used` bytes in a buffer of at least `need` bytes (doubling, or exactly `exact`). */
function grown(b: Buffer, used: number, need: number, exact?: number): Buffer {
  const out = Buffer.allocUnsafeSlow(exact ?? Math.max(need, b.length * 2));
  b.copy(out, 0, 0, used);
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Reading central directories

/** One central directory record as parsed; sizes and offset already resolved from a ZIP64 extra. */
export interface CentralDirectoryEntry {
  name: string;
  versionMadeBy: number;
  versionNeeded: number;
  flags: number;
  method: number;
  crc: number;
  compressedSize: number;
  size: number;
  localHeaderOffset: number;
  externalAttributes: number;
  /** Whether the record carries a ZIP64 extended information extra field. */
  zip64: boolean;
}

interface RawRecord {
  start: number;
  end: number;
  nameEnd: number;
  extraEnd: number;
  size: number;
  compressedSize: number;
  offset: number;
  /** Start and end of the ZIP64 extra block (header included), or -1. */
  zip64Start: number;
  zip64End: number;
}

/** Walks the records of a central directory, checking every length against the buffer. */
function* walkCentralDirectory(cd: Buffer): Generator<RawRecord> {
  let at = 0;
  while (at < cd.length) {
    if (at + CENTRAL_HEADER_SIZE > cd.length || cd.readUInt32LE(at) !== SIG_CENTRAL)
      throw new ZipFormatError(`no central directory record at ${at}`);
    const nameEnd = at + CENTRAL_HEADER_SIZE + cd.readUInt16LE(at + 28);
    const extraEnd = nameEnd + cd.readUInt16LE(at + 30);
    const end = extraEnd + cd.readUInt16LE(at + 32);
    if (end > cd.length) throw new ZipFormatError(`central directory record at ${at} runs past the end`);
    if (cd.readUInt16LE(at + 34) !== 0) throw new ZipFormatError(`record at ${at} is on another disk`);
    const record: RawRecord = {
      start: at,
      end,
      nameEnd,
      extraEnd,
      compressedSize: cd.readUInt32LE(at + 20),
      size: cd.readUInt32LE(at + 24),
      offset: cd.readUInt32LE(at + 42),
      zip64Start: -1,
      zip64End: -1,
    };
    for (let x = nameEnd; x < extraEnd;) {
      if (x + 4 > extraEnd) throw new ZipFormatError(`bad extra field in record at ${at}`);
      const blockEnd = x + 4 + cd.readUInt16LE(x + 2);
      if (blockEnd > extraEnd) throw new ZipFormatError(`bad extra field in record at ${at}`);
      if (cd.readUInt16LE(x) === ZIP64_EXTRA_ID) {
        record.zip64Start = x;
        record.zip64End = blockEnd;
        let field = x + 4;
        const take = (): number => {
          if (field + 8 > blockEnd) throw new ZipFormatError(`short ZIP64 extra field in record at ${at}`);
          field += 8;
          return readU64(cd, field - 8);
        };
        if (record.size === MAX32) record.size = take();
        if (record.compressedSize === MAX32) record.compressedSize = take();
        if (record.offset === MAX32) record.offset = take();
      }
      x = blockEnd;
    }
    if (record.zip64Start < 0 && (record.size === MAX32 || record.compressedSize === MAX32 || record.offset === MAX32))
      throw new ZipFormatError(`record at ${at} reads 0xFFFFFFFF but has no ZIP64 extra field`);
    yield record;
    at = end;
  }
}

/**
 * Parses a central directory (diagnostics and tests; the assembler does not build this list).
 * @internal exported for tests
 */
export function listCentralDirectory(cd: Buffer): CentralDirectoryEntry[] {
  return Array.from(walkCentralDirectory(cd), (r) => ({
    name: cd.toString('utf8', r.start + CENTRAL_HEADER_SIZE, r.nameEnd),
    versionMadeBy: cd.readUInt16LE(r.start + 4),
    versionNeeded: cd.readUInt16LE(r.start + 6),
    flags: cd.readUInt16LE(r.start + 8),
    method: cd.readUInt16LE(r.start + 10),
    crc: cd.readUInt32LE(r.start + 16),
    compressedSize: r.compressedSize,
    size: r.size,
    localHeaderOffset: r.offset,
    externalAttributes: cd.readUInt32LE(r.start + 38),
    zip64: r.zip64Start >= 0,
  }));
}

/**
 * Copies a chunk's central directory with every local-header offset moved by `baseOffset`. A record whose
 * new offset reaches 0xFFFFFFFF gets its offset in a ZIP64 extra field (existing ZIP64 sizes kept, version
 * needed raised to 4.5); other extra fields and comments are kept. With `entriesLength`, an offset that does not
 * fall inside the chunk's entries is an error.
 * @internal exported for tests
 */
export function rewriteCentralDirectory(
  cd: Buffer,
  baseOffset: number,
  entriesLength?: number,
): { centralDirectory: Buffer; entryCount: number } {
  if (!Number.isSafeInteger(baseOffset) || baseOffset < 0) throw new RangeError(`bad base offset: ${baseOffset}`);
  // A rebuilt record grows by at most a 4-byte extra header and three 8-byte values (46-byte minimum record).
  const out = Buffer.allocUnsafe(cd.length + Math.ceil(cd.length / CENTRAL_HEADER_SIZE) * 28);
  let length = 0;
  let entryCount = 0;
  for (const r of walkCentralDirectory(cd)) {
    entryCount++;
    if (entriesLength !== undefined && r.offset >= entriesLength)
      throw new ZipFormatError(`record at ${r.start} points at ${r.offset}, past the entries (${entriesLength})`);
    const offset = baseOffset + r.offset;
    if (r.zip64Start < 0 && offset < MAX32) {
      cd.copy(out, length, r.start, r.end);
      out.writeUInt32LE(offset, length + 42);
      length += r.end - r.start;
      continue;
    }
    const start = length;
    cd.copy(out, length, r.start, r.nameEnd);
    length += r.nameEnd - r.start;
    // other extra blocks, verbatim
    if (r.zip64Start >= 0) {
      length += cd.copy(out, length, r.nameEnd, r.zip64Start);
      length += cd.copy(out, length, r.zip64End, r.extraEnd);
    } else {
      length += cd.copy(out, length, r.nameEnd, r.extraEnd);
    }
    const big: number[] = [];
    if (cd.readUInt32LE(r.start + 24) === MAX32) big.push(r.size);
    if (cd.readUInt32LE(r.start + 20) === MAX32) big.push(r.compressedSize);
    if (offset >= MAX32) big.push(offset);
    if (big.length) {
      out.writeUInt16LE(ZIP64_EXTRA_ID, length);
      out.writeUInt16LE(8 * big.length, length + 2);
      length += 4;
      for (const v of big) {
        writeU64(out, v, length);
        length += 8;
      }
    }
    length += cd.copy(out, length, r.extraEnd, r.end);
    const extraLength = length - start - (r.nameEnd - r.start) - (r.end - r.extraEnd);
    if (extraLength > MAX16) throw new ZipFormatError(`extra field of record at ${r.start} grows past 65535`);
    out.writeUInt16LE(extraLength, start + 30);
    out.writeUInt32LE(Math.min(offset, MAX32), start + 42);
    if (big.length) {
      const madeBy = out.readUInt16LE(start + 4);
      out.writeUInt16LE((madeBy & 0xff00) | Math.max(madeBy & 0xff, VERSION_ZIP64), start + 4);
      out.writeUInt16LE(Math.max(out.readUInt16LE(start + 6), VERSION_ZIP64), start + 6);
    }
  }
  return { centralDirectory: out.subarray(0, length), entryCount };
}

/**
 * Splits a standalone zip (a chunk made by {@link ZipChunkBuilder}, or any single-disk zip whose central
 * directory directly follows its entries) into its local-entries length and central directory. Reads the ZIP64
 * end record when the locator is there. The central directory is a view into `zip`, not a copy.
 */
export function splitChunkZip(zip: Buffer): { entriesLength: number; centralDirectory: Buffer; entryCount: number } {
  let eocd = -1;
  for (let at = zip.length - EOCD_SIZE; at >= Math.max(0, zip.length - EOCD_SIZE - MAX16); at--) {
    if (zip.readUInt32LE(at) === SIG_EOCD && at + EOCD_SIZE + zip.readUInt16LE(at + 20) === zip.length) {
      eocd = at;
      break;
    }
  }
  if (eocd < 0) throw new ZipFormatError('no end of central directory record');
  let entryCount = zip.readUInt16LE(eocd + 10);
  let cdSize = zip.readUInt32LE(eocd + 12);
  let cdOffset = zip.readUInt32LE(eocd + 16);
  let cdEnd = eocd;
  const locator = eocd - ZIP64_LOCATOR_SIZE;
  if (locator >= 0 && zip.readUInt32LE(locator) === SIG_ZIP64_LOCATOR) {
    const record = readU64(zip, locator + 8);
    if (record + ZIP64_EOCD_SIZE > locator || zip.readUInt32LE(record) !== SIG_ZIP64_EOCD)
      throw new ZipFormatError('ZIP64 locator does not point at a ZIP64 end record');
    entryCount = readU64(zip, record + 32);
    cdSize = readU64(zip, record + 40);
    cdOffset = readU64(zip, record + 48);
    cdEnd = record;
  } else if (entryCount === MAX16 || cdSize === MAX32 || cdOffset === MAX32) {
    throw new ZipFormatError('end record asks for ZIP64 but there is no ZIP64 locator');
  }
  if (cdOffset + cdSize !== cdEnd)
    throw new ZipFormatError(`central directory [${cdOffset}, +${cdSize}) does not end at the end records (${cdEnd})`);
  const centralDirectory = zip.subarray(cdOffset, cdOffset + cdSize);
  let count = 0;
  for (const r of walkCentralDirectory(centralDirectory)) {
    count++;
    if (r.offset >= cdOffset) throw new ZipFormatError(`entry ${count} points past the entries section`);
  }
  if (count !== entryCount) throw new ZipFormatError(`end record counts ${entryCount} entries, found ${count}`);
  return { entriesLength: cdOffset, centralDirectory, entryCount };
}

// ---------------------------------------------------------------------------------------------------------------
// Assembling

/**
 * One chunk of a merged zip. Both sources are opened lazily, each once per {@link assembleZip} run: `entries`
 * during the entries pass, `centralDirectory` during the central-directory pass.
 */
/**
 * A chunk's entries that the zip's writer copies itself (e.g. S3 UploadPartCopy of a range of the chunk zip):
 * assembleZip passes it on in its output, unread, in its place among the bytes.
 */
export interface EntriesReference<R> {
  readonly reference: R;
  /** how many bytes it stands for: the part's entriesLength */
  readonly length: number;
}

export interface ZipPart<R = never> {
  /** Length of the chunk's local-entries section, i.e. {@link ChunkZip.entriesLength}. */
  readonly entriesLength: number;
  /**
   * The chunk zip's bytes `[0, entriesLength)`, e.g. a streamed S3 range GET; must yield exactly that many. Or a
   * reference to them, which the output carries for its writer to copy.
   */
  readonly entries: () => AsyncIterable<Uint8Array> | Uint8Array | EntriesReference<R>;
  /** The chunk zip's central directory, `[entriesLength, entriesLength + centralDirectoryLength)`. */
  readonly centralDirectory: () => Promise<Uint8Array> | Uint8Array;
}

/** An entry written after the parts, its content streamed (deflated on the fly, sizes in a data descriptor). */
const isReference = <R>(value: object): value is EntriesReference<R> =>
  'reference' in value && typeof (value as { length?: unknown }).length === 'number';

export interface StreamedZipEntry {
  name: string;
  content: AsyncIterable<Uint8Array>;
  /** Deflate level 0-9, default 6 (the entry is always method deflate). */
  level?: number;
  mode?: number;
}

export interface AssembleZipOptions {
  trailingEntries?: StreamedZipEntry[];
  /** Modification time of trailing entries; default: when assembly started. */
  mtime?: Date;
  /** Always write ZIP64 end records. */
  zip64?: boolean;
}

/** A {@link ZipPart} over a chunk zip already in memory (local runtime, tests). */
export function zipPartFromChunk(zip: Buffer): ZipPart {
  const { entriesLength, centralDirectory } = splitChunkZip(zip);
  return { entriesLength, entries: () => zip.subarray(0, entriesLength), centralDirectory: () => centralDirectory };
}

/**
 * Streams one zip made of many chunk zips. `parts` is called twice and must give the same parts in the same
 * order both times: the first pass copies each part's entries (base offset = bytes written so far), the second
 * fetches and rewrites each part's central directory. Then come the trailing streamed entries, their central
 * records and the end records (ZIP64 when the count reaches 65535 or an offset or size 4 GiB). Memory holds one
 * part's central directory at a time, so the number of entries is not limited by memory.
 *
 * Yields Buffers in file order, typically the parts' own stream chunks, one buffer per central directory and
 * the deflate output (64 KiB pieces); feed them to a multipart upload (`Readable.from(assembleZip(...))`).
 * Throws {@link ZipFormatError} when a part's entries are not `entriesLength` bytes, a central directory is
 * malformed or points outside its part, or the two passes disagree.
 */
export async function* assembleZip<R = never>(
  parts: () => AsyncIterable<ZipPart<R>> | Iterable<ZipPart<R>>,
  options: AssembleZipOptions = {},
): AsyncGenerator<Buffer | ([R] extends [never] ? never : EntriesReference<R>), void, undefined> {
  const stamp = dosStamp(options.mtime ?? new Date());
  let position = 0;
  let partCount = 0;
  for await (const part of parts()) {
    if (!Number.isSafeInteger(part.entriesLength) || part.entriesLength < 0)
      throw new RangeError(`bad entriesLength: ${part.entriesLength}`);
    const start = position;
    const source = part.entries();
    if (source instanceof Uint8Array) {
      position += source.length;
      if (source.length) yield asBuffer(source);
    } else if (isReference(source)) {
      position += source.length;
      if (source.length) yield source as [R] extends [never] ? never : EntriesReference<R>;
    } else {
      for await (const piece of source) {
        position += piece.length;
        if (position - start > part.entriesLength) break;
        if (piece.length) yield asBuffer(piece);
      }
    }
    if (position - start !== part.entriesLength)
      throw new ZipFormatError(
        `part ${partCount} gave ${position - start} bytes of entries, not ${part.entriesLength}`,
      );
    partCount++;
  }
  const entriesEnd = position;

  const trailing: Buffer[] = [];
  for (const entry of options.trailingEntries ?? []) {
    const record: EntryRecord = {
      name: encodeEntryPath(entry.name),
      flags: FLAG_UTF8 | FLAG_DATA_DESCRIPTOR,
      method: METHOD_DEFLATE,
      stamp,
      crc: 0,
      compressedSize: 0,
      size: 0,
      offset: position,
      mode: entry.mode ?? DEFAULT_MODE,
      localVersion: VERSION_ZIP64,
    };
    const header = localHeader(record, true);
    yield header;
    position += header.length;
    // Small pieces (CSV rows) are batched: a stream write costs far more than copying a row.
    const counted = async function* (): AsyncGenerator<Uint8Array> {
      let batch: Uint8Array[] = [];
      let batchLength = 0;
      const flush = (): Uint8Array => {
        const out = batch.length === 1 ? batch[0]! : Buffer.concat(batch, batchLength);
        record.crc = crc32(out, record.crc);
        record.size += out.length;
        batch = [];
        batchLength = 0;
        return out;
      };
      for await (const piece of entry.content) {
        batch.push(piece);
        batchLength += piece.length;
        if (batchLength >= STREAM_CHUNK) yield flush();
      }
      if (batchLength) yield flush();
    };
    const deflate = zlib.createDeflateRaw({ level: checkLevel(entry.level ?? DEFAULT_LEVEL), chunkSize: STREAM_CHUNK });
    // Errors of the content or of deflate destroy `deflate`, so they surface in the loop below.
    pipeline(Readable.from(counted()), deflate, () => undefined);
    try {
      for await (const out of deflate as AsyncIterable<Buffer>) {
        record.compressedSize += out.length;
        yield out;
      }
    } finally {
      deflate.destroy();
    }
    position += record.compressedSize;
    const descriptor = Buffer.alloc(ZIP64_DATA_DESCRIPTOR_SIZE);
    descriptor.writeUInt32LE(SIG_DATA_DESCRIPTOR, 0);
    descriptor.writeUInt32LE(record.crc, 4);
    writeU64(descriptor, record.compressedSize, 8);
    writeU64(descriptor, record.size, 16);
    yield descriptor;
    position += descriptor.length;
    trailing.push(centralRecord(record));
  }

  const cdOffset = position;
  let base = 0;
  let entryCount = 0;
  let index = 0;
  for await (const part of parts()) {
    if (index >= partCount) throw new ZipFormatError('parts() gave more parts on the second pass');
    const cd = asBuffer(await part.centralDirectory());
    const rewritten = rewriteCentralDirectory(cd, base, part.entriesLength);
    entryCount += rewritten.entryCount;
    base += part.entriesLength;
    index++;
    if (rewritten.centralDirectory.length) yield rewritten.centralDirectory;
    position += rewritten.centralDirectory.length;
  }
  if (index !== partCount || base !== entriesEnd)
    throw new ZipFormatError('parts() gave different parts on the second pass');
  for (const record of trailing) {
    yield record;
    position += record.length;
  }
  entryCount += trailing.length;
  yield endOfCentralDirectory({
    entryCount,
    centralDirectoryOffset: cdOffset,
    centralDirectorySize: position - cdOffset,
    zip64: options.zip64,
  });
}
