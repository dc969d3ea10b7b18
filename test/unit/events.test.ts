import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { domainEvent, EVENT_EXAMPLES, EVENT_SCHEMAS, renderEventCatalogue } from '../../lambdas/core/events';

describe('event contracts', () => {
  it.each(Object.keys(EVENT_SCHEMAS))('the documented example of %s matches its schema', (type) => {
    const schema = EVENT_SCHEMAS[type as keyof typeof EVENT_SCHEMAS];
    expect(schema.safeParse(EVENT_EXAMPLES[type as keyof typeof EVENT_EXAMPLES]).success).toBe(true);
  });

  it('docs/events.md is the generated catalogue (run npm run docs after changing a schema)', () => {
    expect(readFileSync(join(__dirname, '../../docs/events.md'), 'utf8')).toBe(renderEventCatalogue());
  });

  it('refuses a detail that breaks the contract (unknown field, bad certificate id)', () => {
    expect(() =>
      domainEvent('Batch Failed', { ...EVENT_EXAMPLES['Batch Failed'], privateKey: 'x' } as never),
    ).toThrow();
    expect(() =>
      domainEvent('Certificate Issued', {
        ...EVENT_EXAMPLES['Certificate Issued'],
        certificates: [{ ...EVENT_EXAMPLES['Certificate Issued'].certificates[0]!, certificateId: 'XYZ' }],
      }),
    ).toThrow();
  });
});
