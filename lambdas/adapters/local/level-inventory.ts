/**
 * The local runtime's inventory: the Inventory port on an embedded LevelDB (classic-level, the store dynalite itself
 * keeps its tables in), under `{dataDir}/inventory`. AWS keeps DynamoInventory on DynamoDB.
 *
 * Why not dynalite, as for the other tables: a bulk batch records every certificate it issues, and on dynalite each
 * record costs ~0.4 ms of the local runtime's CPU (SDK marshalling, HTTP, dynalite's validation, then LevelDB writes
 * of the item and of its two index entries one by one) — several times the ~0.08 ms of signing the certificate, on
 * the same cores. Here a record is one JSON value and two index keys in one LevelDB batch per event: ~0.03 ms
 * (docs/benchmarks.md). DynamoInventory is still run against dynalite by the same contract tests.
 *
 * Layout (UTF-8 keys; NUL separates the parts, so ids may not contain NUL):
 * - `c\0{certificateId}` → the record as JSON, with `expiringNotified` (the windows notified) once there is one;
 * - `i\0{issuerId}\0{issuedKey}` → '' : an issuer's certificates in issuedAt, then id order (`issuedKey =
 *   issuedAt#certificateId`, as DynamoInventory's index);
 * - `e\0{expiryKey}` → '' : every certificate, soonest notAfter first (`expiryKey = notAfter#certificateId`).
 * Tokens are base64url JSON of the last key returned (`{ issuerId, issuedKey }`, `{ v: 'expiry', expiryKey }`); the
 * next page starts after it, so nothing is skipped or repeated when records change between pages.
 *
 * This process is the store's only writer (LevelDB locks the directory): writes run one at a time, and putIssued's
 * "create, never overwrite" is a presence read (getMany) then one atomic batch of the absent records. The presence
 * read asks only for the ids that an in-memory Bloom filter of the store's ids may hold (IdFilter): a fresh bulk
 * event's 500 ids skip it, where it cost ~10 % of a batch's CPU. The filter is filled from the store's keys in the
 * background after open (every read is made until then) and takes every id written; it is never wrong about an id
 * that is stored, only sometimes (~1 %) unsure about one that is not.
 */
import { ClassicLevel } from 'classic-level';
import { ValidationError } from '../../core/errors';
import type { Inventory, InventoryPage, InventoryQuery, InventoryRecord, InventoryStatus } from '../../core/ports';
import {
  checkLimit,
  decodeToken,
  encodeToken,
  inventorySortKeys,
  invalidToken,
  isoOrUndefined,
  isPlainObject,
  sortKeyId,
  toRecord,
} from '../aws/dynamo-inventory';

type Item = Record<string, unknown>;

const SEP = '\u0000';
const recordKey = (certificateId: string): string => `c${SEP}${certificateId}`;
const issuerPrefix = (issuerId: string): string => `i${SEP}${issuerId}${SEP}`;
const EXPIRY_PREFIX = `e${SEP}`;
/** The first key after every key that starts with `prefix` (which ends with SEP). */
const prefixEnd = (prefix: string): string => `${prefix.slice(0, -1)}\u0001`;

/** Records per presence read and write batch in putIssued. */
const PUT_BATCH = 1000;
/** Ids the filter is sized for at least; a store that outgrows it (4 × its size at open) reads every presence again. */
const FILTER_MIN_CAPACITY = 1 << 19;
/** Keys read per step while the filter is filled after open. */
const FILL_STEP = 1000;

/**
 * A Bloom filter of strings: 10 bits and 7 probes per id for the capacity it is made for (~1 % false positives
 * there), two 32-bit FNV-1a hashes combined (Kirsch–Mitzenmacher). `mayHold` is false only for an id never added.
 * @internal exported for tests
 */
export class IdFilter {
  private readonly bits: Uint32Array;
  private readonly mask: number;
  private count = 0;

  constructor(readonly capacity: number) {
    let size = 32;
    while (size < capacity * 10) size *= 2; // a power of two: the probes are masked, not divided
    this.bits = new Uint32Array(size / 32);
    this.mask = size - 1;
  }

  /** Whether the filter still gives ~1 % false positives or better. */
  get withinCapacity(): boolean {
    return this.count <= this.capacity;
  }

  add(id: string): void {
    const [first, step] = hashes(id);
    let h1 = first;
    for (let i = 0; i < PROBES; i++) {
      const bit = h1 & this.mask;
      this.bits[bit >>> 5]! |= 1 << (bit & 31);
      h1 = (h1 + step) >>> 0;
    }
    this.count++;
  }

  mayHold(id: string): boolean {
    const [first, step] = hashes(id);
    let h1 = first;
    for (let i = 0; i < PROBES; i++) {
      const bit = h1 & this.mask;
      if ((this.bits[bit >>> 5]! & (1 << (bit & 31))) === 0) return false;
      h1 = (h1 + step) >>> 0;
    }
    return true;
  }
}
const PROBES = 7;

function hashes(id: string): [number, number] {
  let a = 0x811c9dc5;
  let b = 0x01000193 ^ id.length;
  for (let i = 0; i < id.length; i++) {
    const c = id.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x5bd1e995);
    b ^= b >>> 15;
  }
  return [a >>> 0, (b | 1) >>> 0]; // an odd step visits distinct bits of a power-of-two table
}
/** Index keys read per step of a listing (at least; a page reads one more than its limit). */
const SCAN_STEP = 100;

interface Range {
  gt?: string;
  gte?: string;
  lt: string;
}

export class LevelInventory implements Inventory {
  private tail: Promise<unknown> = Promise.resolve();
  /** the ids stored (see the file header); undefined until it holds every id stored before it was made */
  private ids: IdFilter | undefined;
  /** ids written while the filter is filled */
  private readonly pendingIds = new Set<string>();
  private readonly filling: Promise<void>;
  private closing = false;

  private constructor(private readonly db: ClassicLevel<string, string>) {
    this.filling = this.fillIds().catch(() => undefined); // a filter that cannot be filled is not used
  }

  /** Opens (or creates) the store in `location`, a directory. */
  static async open(location: string): Promise<LevelInventory> {
    const db = new ClassicLevel<string, string>(location, { keyEncoding: 'utf8', valueEncoding: 'utf8' });
    await db.open();
    return new LevelInventory(db);
  }

  /** Waits for the writes started before, then closes the store. */
  async close(): Promise<void> {
    this.closing = true;
    await this.filling;
    await this.tail;
    await this.db.close();
  }

  /** Resolves once the id filter is in use (tests; putIssued reads every presence until then). */
  async idsReady(): Promise<boolean> {
    await this.filling;
    return this.ids !== undefined;
  }

  /**
   * Makes the filter from the record keys. Ids written meanwhile are added by the writes themselves, into the filter
   * being filled (`pendingIds`), so none is missed whether the scan's snapshot saw them or not.
   */
  private async fillIds(): Promise<void> {
    // ids go straight into a filter (never a list of every id: a store of millions would hold them all at once);
    // a store of more than a quarter of the filter's capacity is scanned again into one four times the size
    for (let capacity = FILTER_MIN_CAPACITY; ; capacity *= 4) {
      const filter = new IdFilter(capacity);
      const scanned = await this.scanIdsInto(filter, capacity / 4);
      if (scanned === 'closing') return;
      if (scanned === 'too many') continue;
      for (const id of this.pendingIds) filter.add(id);
      this.pendingIds.clear();
      this.ids = filter;
      return;
    }
  }

  /** Adds the stored record ids to `filter`, unless there are more than `limit` of them. */
  private async scanIdsInto(filter: IdFilter, limit: number): Promise<'done' | 'too many' | 'closing'> {
    const prefix = recordKey('');
    const keys = this.db.keys({ gte: prefix, lt: prefixEnd(prefix) });
    let count = 0;
    try {
      for (;;) {
        if (this.closing) return 'closing';
        const step = await keys.nextv(FILL_STEP);
        if (step.length === 0) return 'done';
        count += step.length;
        if (count > limit) return 'too many';
        for (const key of step) filter.add(key.slice(prefix.length));
      }
    } finally {
      await keys.close();
    }
  }
  /** Notes ids about to be written (before the write: a reader that trusts the filter must never miss one). */
  private noteIds(items: Stored[]): void {
    if (this.ids) for (const item of items) this.ids.add(item.record.certificateId);
    else for (const item of items) this.pendingIds.add(item.record.certificateId);
  }

  /** Creates the records that do not exist yet; an existing record (revoked or not) is left as it is. */
  async putIssued(records: InventoryRecord[]): Promise<void> {
    const items = records.map(stored); // validate all before writing any
    return this.exclusive(async () => {
      // the first of two records with the same id wins, as with DynamoDB's conditional puts
      const byId = new Map<string, Stored>();
      for (const item of items) if (!byId.has(item.record.certificateId)) byId.set(item.record.certificateId, item);
      const unique = [...byId.values()];
      for (let off = 0; off < unique.length; off += PUT_BATCH) {
        const slice = unique.slice(off, off + PUT_BATCH);
        const absent = await this.absent(slice);
        this.noteIds(absent);
        await writeRecords(this.db, absent);
      }
    });
  }

  /** The items whose record is not stored: those the filter may hold are read, the others are absent for sure. */
  private async absent(items: Stored[]): Promise<Stored[]> {
    const ids = this.ids?.withinCapacity ? this.ids : undefined;
    const unsure = ids ? items.filter((item) => ids.mayHold(item.record.certificateId)) : items;
    if (unsure.length === 0) return items;
    const existing = await this.db.getMany(unsure.map((item) => recordKey(item.record.certificateId)));
    const stored = new Set(unsure.filter((_, n) => existing[n] !== undefined));
    return stored.size === 0 ? items : items.filter((item) => !stored.has(item));
  }

  /**
   * Writes stored items as they are (records with their `expiringNotified` windows), replacing what is there: the
   * one-time import of an inventory kept elsewhere before (local/runtime/inventory-import.ts).
   */
  async importItems(items: Item[]): Promise<void> {
    const all = items.map((item) => stored(toRecordWithWindows(item)));
    return this.exclusive(async () => {
      for (let off = 0; off < all.length; off += PUT_BATCH) {
        const slice = all.slice(off, off + PUT_BATCH);
        this.noteIds(slice);
        await writeRecords(this.db, slice);
      }
    });
  }

  async get(certificateId: string): Promise<InventoryRecord | undefined> {
    const item = await this.read(certificateId);
    return item ? toRecord(item) : undefined;
  }

  async listByIssuer(issuerId: string, query: InventoryQuery): Promise<InventoryPage> {
    checkLimit(query.limit);
    const prefix = issuerPrefix(issuerId);
    let after: string | undefined;
    if (query.nextToken !== undefined) {
      const token = decodePosition(
        query.nextToken,
        (t) => t.issuerId === issuerId && sortKeyId(t.issuedKey) !== undefined,
      );
      after = `${prefix}${token.issuedKey as string}`;
    }
    return this.page(
      after !== undefined ? { gt: after, lt: prefixEnd(prefix) } : { gte: prefix, lt: prefixEnd(prefix) },
      (key) => key.slice(prefix.length),
      query,
      (issuedKey) => encodeToken({ issuerId, issuedKey }),
    );
  }

  /** Certificates whose notAfter is before `before`, soonest first (then by id): one range of the expiry index. */
  async listExpiring(before: string, query: InventoryQuery): Promise<InventoryPage> {
    checkLimit(query.limit);
    const beforeIso = isoOrUndefined(before);
    if (beforeIso === undefined) {
      throw new ValidationError('INVALID_DATE', `before must be an ISO date (got ${String(before)})`);
    }
    let after: string | undefined;
    if (query.nextToken !== undefined) {
      const token = decodePosition(query.nextToken, (t) => t.v === 'expiry' && sortKeyId(t.expiryKey) !== undefined);
      after = `${EXPIRY_PREFIX}${token.expiryKey as string}`;
    }
    // expiryKey = notAfter#id < before exactly when notAfter < before (an ISO date has no '#')
    const lt = `${EXPIRY_PREFIX}${beforeIso}`;
    return this.page(
      after !== undefined ? { gt: after, lt } : { gte: EXPIRY_PREFIX, lt },
      (key) => key.slice(EXPIRY_PREFIX.length),
      query,
      (expiryKey) => encodeToken({ v: 'expiry', expiryKey }),
    );
  }

  markRevoked(certificateId: string, revokedAt: string, reason: string): Promise<'revoked' | 'already' | 'missing'> {
    return this.exclusive(async () => {
      const item = await this.read(certificateId);
      if (!item) return 'missing';
      if (item.status === 'revoked') return 'already';
      await this.write({ ...item, status: 'revoked', revokedAt, revocationReason: reason });
      return 'revoked';
    });
  }

  markExpiringNotified(certificateId: string, window: string): Promise<boolean> {
    return this.exclusive(async () => {
      const item = await this.read(certificateId);
      if (!item) return false;
      const windows = Array.isArray(item.expiringNotified) ? (item.expiringNotified as string[]) : [];
      if (windows.includes(window)) return false;
      await this.write({ ...item, expiringNotified: [...windows, window] });
      return true;
    });
  }

  /**
   * One page of an index range: reads index keys in steps, the records they name, keeps those with the status
   * asked for, and stops one past the limit (so the last page carries no token).
   */
  private async page(
    range: Range,
    sortKeyOf: (indexKey: string) => string,
    query: InventoryQuery,
    tokenOf: (lastSortKey: string) => string,
  ): Promise<InventoryPage> {
    const { limit, status } = query;
    const matches: { item: Item; sortKey: string }[] = [];
    const iterator = this.db.keys({ ...range });
    try {
      while (matches.length <= limit) {
        const keys = await iterator.nextv(Math.max(SCAN_STEP, limit + 1 - matches.length));
        if (keys.length === 0) break;
        const sortKeys = keys.map(sortKeyOf);
        const values = await this.db.getMany(sortKeys.map((sortKey) => recordKey(sortKeyId(sortKey)!)));
        for (const [n, value] of values.entries()) {
          if (value === undefined) continue; // cannot happen: a record and its index keys are written in one batch
          const item = JSON.parse(value) as Item;
          if (matchesStatus(item, status)) matches.push({ item, sortKey: sortKeys[n]! });
          if (matches.length > limit) break;
        }
      }
    } finally {
      await iterator.close();
    }
    if (matches.length <= limit) return { items: matches.map((m) => toRecord(m.item)) };
    const returned = matches.slice(0, limit);
    return { items: returned.map((m) => toRecord(m.item)), nextToken: tokenOf(returned[returned.length - 1]!.sortKey) };
  }

  private async read(certificateId: string): Promise<Item | undefined> {
    const value = await this.db.get(recordKey(certificateId));
    return value === undefined ? undefined : (JSON.parse(value) as Item);
  }

  /** Rewrites a stored record whose index keys do not change (status, revocation, windows). */
  private write(item: Item): Promise<void> {
    return this.db.put(recordKey(item.certificateId as string), JSON.stringify(item));
  }

  /** Runs `fn` after every write started before it (a promise chain: one write operation at a time). */
  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.tail.then(fn, fn);
    this.tail = run.catch(() => undefined);
    return run;
  }
}

/** A listing's token: an object of two fields that `valid` accepts; INVALID_NEXT_TOKEN otherwise. */
function decodePosition(token: string, valid: (fields: Record<string, unknown>) => boolean): Record<string, unknown> {
  const value = decodeToken(token);
  if (!isPlainObject(value) || Object.keys(value).length !== 2 || !valid(value)) throw invalidToken();
  return value;
}

/** A record to store and its sort keys (inventorySortKeys: validated, dates normalised). */
interface Stored {
  record: InventoryRecord & { expiringNotified?: string[] };
  issuedKey: string;
  expiryKey: string;
}

/** inventorySortKeys' checks and keys, and no NUL in the ids that become key parts. */
function stored(record: InventoryRecord & { expiringNotified?: string[] }): Stored {
  const keys = inventorySortKeys(record);
  if (record.certificateId.includes(SEP) || record.issuerId.includes(SEP)) {
    throw new ValidationError('INVALID_INVENTORY_RECORD', 'a certificate or issuer id may not contain NUL', {
      details: { certificateId: record.certificateId.replaceAll(SEP, '\\0') },
    });
  }
  return { record, ...keys };
}

/** The record of a stored item of either store, with its notified windows as a list (DynamoDB: a string set). */
function toRecordWithWindows(item: Item): InventoryRecord & { expiringNotified?: string[] } {
  const windows = item.expiringNotified;
  const list = windows instanceof Set ? [...(windows as Set<string>)] : Array.isArray(windows) ? windows : undefined;
  return { ...toRecord(item), ...(list && list.length > 0 ? { expiringNotified: list as string[] } : {}) };
}

/**
 * Writes the records, each with its two index keys, in one atomic batch. A chained batch, not an array of operations:
 * abstract-level copies each operation of an array into an object of its own and the binding reads its fields one by
 * one, which cost the main thread twice the time of these puts (measured: 4.9 against 2.6 µs per record, 1,000
 * records a batch).
 */
async function writeRecords(db: ClassicLevel<string, string>, items: Stored[]): Promise<void> {
  if (items.length === 0) return;
  const batch = db.batch();
  try {
    for (const { record, issuedKey, expiryKey } of items) {
      batch.put(recordKey(record.certificateId), JSON.stringify(record));
      batch.put(`${issuerPrefix(record.issuerId)}${issuedKey}`, '');
      batch.put(`${EXPIRY_PREFIX}${expiryKey}`, '');
    }
  } catch (error) {
    await batch.close();
    throw error;
  }
  await batch.write(); // closes the batch, written or not
}

const matchesStatus = (item: Item, status: InventoryStatus | undefined): boolean =>
  status === undefined || item.status === status;
