/** bench/model.ts: the arithmetic on a small case worked by hand, with round prices. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  loadInputs,
  markdown,
  modelRow,
  type ModelInputs,
  pcaFee,
  runModel,
  sourceProblems,
  sourcesMarkdown,
} from '../../bench/model';

/** The shipped inputs with every price zero except the one a test looks at. */
function onlyPrice(name: string, value: number): ModelInputs {
  const inputs = loadInputs();
  const prices = Object.fromEntries(
    Object.entries(inputs.prices).map(([k, v]) => [k, { ...v, value: k === 'pcaCertificateTiers' ? [[null, 0]] : 0 }]),
  ) as ModelInputs['prices'];
  (prices as Record<string, { value: unknown }>)[name]!.value = value;
  return { ...inputs, prices };
}

describe('the scale and cost model', () => {
  it('10,000 certificates, certflow CA in SSM: 10 chunks of 1,000 in flight at once, Lambda GB-s by hand', () => {
    const row = modelRow(onlyPrice('lambdaArmGbSecond', 1), 10_000, 'certflow-ssm', 'default');
    expect(row).toMatchObject({ batches: 1, chunkSize: 1000, chunks: 10, maxConcurrency: 100 });
    expect(row.bindingApi).toBeUndefined();
    // a chunk alone: 0.3 s overhead + 1,000 × 115 µs = 0.415 s; 10 in flight → 10,000 / 0.415 s
    expect(row.throughput).toBeCloseTo(10_000 / 0.415, 6);
    // zip 10,000 × 1,560 B = 15.6 MB assembled at 80 MB/s = 0.195 s; plus the 10 s of workflow overhead
    expect(row.seconds).toBeCloseTo(10 + 0.415 + 0.195, 6);
    // 10 chunks × 1.769 GB × 0.415 s + the assembler 1.024 GB × 0.195 s, at $1 per GB-s
    expect(row.perCertificate.lambda * 10_000).toBeCloseTo(10 * 1.769 * 0.415 + 1.024 * 0.195, 6);
    // the inventory's Lambda: 5 ms × 0.25 GB per certificate
    expect(row.perCertificate.inventory).toBeCloseTo(0.005 * 0.25, 12);
    expect(row.total).toBeCloseTo(row.perCertificate.lambda + row.perCertificate.inventory, 12);
  });

  it('registering 10,000 at 10 TPS: the quota sets the time, and the chunks pay for their waits', () => {
    const row = modelRow(onlyPrice('lambdaArmGbSecond', 1), 10_000, 'certflow-ssm+register', 'default');
    expect(row).toMatchObject({ bindingApi: 'iot:RegisterCertificate', chunkSize: 200, chunks: 50, maxConcurrency: 2 });
    expect(row.throughput).toBe(10);
    expect(row.seconds).toBeCloseTo(10 + 1000 + 0.195, 6);
    // each chunk: 2 in flight × 200 / 10 per s = 40 s of wall time, billed
    expect(row.perCertificate.lambda * 10_000).toBeCloseTo(50 * 1.769 * 40 + 1.024 * 0.195, 6);
  });

  it('bills one DynamoDB write unit per paced call and three per certificate for the inventory', () => {
    const paced = modelRow(onlyPrice('dynamoWriteUnit', 1), 10_000, 'certflow-ssm+register', 'default');
    const unpaced = modelRow(onlyPrice('dynamoWriteUnit', 1), 10_000, 'certflow-ssm', 'default');
    // 50 vs 10 completeChunk updates of a < 1 KB done shard, 10,000 schedule writes, 30,000 inventory writes
    expect(paced.perCertificate.dynamodb * 10_000).toBe(50 + 10_000 + 30_000);
    expect(unpaced.perCertificate.dynamodb * 10_000).toBe(10 + 30_000);
  });

  it('prices ACM PCA by monthly tiers and counts one CA per million certificates', () => {
    const tiers: [number | null, number][] = [
      [1000, 0.75],
      [9000, 0.35],
      [null, 0.001],
    ];
    expect(pcaFee(10_500, tiers)).toBeCloseTo(750 + 3150 + 0.5, 9);
    expect(pcaFee(500, tiers)).toBeCloseTo(375, 9);
    const row = modelRow(loadInputs(), 2_500_000, 'acm-pca', 'default');
    expect(row.batches).toBe(3);
    expect(row.fixedMonthly).toBe(3 * 400);
  });

  it('prints a row per quantity, signer and quota level', () => {
    const rows = runModel(loadInputs(), [10_000]);
    expect(rows).toHaveLength(10);
    expect(
      markdown(rows)
        .split('\n')
        .filter((l) => l.startsWith('| 10,000 |')),
    ).toHaveLength(15);
  });
});

describe('the sources of the inputs', () => {
  it('every shipped price and quota names its source, the day it was read, a status and its quote or search note', () => {
    expect(sourceProblems(loadInputs())).toEqual([]);
  });

  it('refuses a cited figure without its quote, a last-known one without a note, and an unknown status', () => {
    const inputs = loadInputs();
    const withoutQuote = { ...inputs.prices.pcaCaMonth!, quote: undefined };
    const withoutNote = { ...inputs.prices.pcaCertificateTiers, note: ' ' };
    const broken = {
      ...inputs,
      prices: { ...inputs.prices, pcaCaMonth: withoutQuote, pcaCertificateTiers: withoutNote },
      quotas: { ...inputs.quotas, 'kms:Sign': { ...inputs.quotas['kms:Sign']!, status: 'probably', date: 'today' } },
    } as unknown as ModelInputs;
    expect(sourceProblems(broken)).toEqual([
      'pcaCaMonth: cited without the quote it was read in',
      'pcaCertificateTiers: last-known without a note of what was searched',
      'quota kms:Sign: no date read (YYYY-MM-DD)',
      'quota kms:Sign: status probably is not one of cited, cited-third-party, last-known',
    ]);
  });

  it('prints one row per input with its status, and escapes the pipes of quoted table rows', () => {
    const inputs = loadInputs();
    const table = sourcesMarkdown(inputs).split('\n');
    const count =
      Object.keys(inputs.prices).length + Object.keys(inputs.quotas).length + Object.keys(inputs.measured).length;
    expect(table).toHaveLength(2 + count);
    const lambda = table.find((l) => l.startsWith('| quota lambdaConcurrency '))!;
    expect(lambda).toContain('| 1,000 |');
    expect(lambda).toContain('| cited |');
    expect(lambda).toContain('“\\| Concurrent executions \\| 1,000 \\| Hundreds of thousands \\|”');
  });
});

describe('docs/scale-and-cost.md', () => {
  it('shows the tables and the sources npm run model prints from the current inputs (re-run it after changing them)', () => {
    const cells = (line: string) =>
      line
        .split('|')
        .slice(1, -1)
        .map((c) => c.trim())
        .join('|');
    const doc = new Set(
      readFileSync(join(__dirname, '../../docs/scale-and-cost.md'), 'utf8')
        .split('\n')
        .filter((l) => l.startsWith('|'))
        .map(cells),
    );
    const inputs = loadInputs();
    const printed = `${markdown(runModel(inputs))}\n${sourcesMarkdown(inputs)}`
      .split('\n')
      .filter((l) => l.startsWith('| ') && !l.startsWith('| ---'));
    expect(printed.length).toBeGreaterThan(40);
    expect(printed.filter((l) => !doc.has(cells(l)))).toEqual([]);
  });
});
