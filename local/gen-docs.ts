/** `npm run docs`: writes the generated documents (event catalogue). */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { renderEventCatalogue } from '../lambdas/core/events';

writeFileSync(join(__dirname, '..', 'docs', 'events.md'), renderEventCatalogue());
console.log('wrote docs/events.md');
