/** `npm run docs`: writes the generated documents (event catalogue, event JSON Schemas, OpenAPI document). */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { renderEventCatalogue } from '../lambdas/core/events';
import { generatedDocs } from './docs';

const docs = join(__dirname, '..', 'docs');
writeFileSync(join(docs, 'events.md'), renderEventCatalogue());
for (const [path, text] of Object.entries(generatedDocs())) {
  mkdirSync(join(docs, path, '..'), { recursive: true });
  writeFileSync(join(docs, path), text);
}
console.log(
  `wrote docs/events.md, ${Object.keys(generatedDocs())
    .map((p) => `docs/${p}`)
    .join(', ')}`,
);
