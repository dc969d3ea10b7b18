/** Helpers for the shared ASL files of `statemachines/`: their `${Name}` placeholders and the stack's values. */
import * as path from 'node:path';
import { PROJECT_ROOT } from './constructs/certflow-function';

/** The `${Name}` placeholders of an ASL document, each once. */
export function placeholdersOf(definition: string): string[] {
  return [...new Set([...definition.matchAll(/\$\{([A-Za-z0-9_]+)\}/g)].map((m) => m[1]!))];
}

/**
 * Fails the synth unless `substitutions` gives a value to every placeholder of the ASL document and has no value
 * without a placeholder (a renamed placeholder would otherwise reach Step Functions as literal `${Name}` text).
 */
export function checkSubstitutions(
  definitionPath: string,
  definition: string,
  substitutions: Readonly<Record<string, string>>,
): void {
  const placeholders = placeholdersOf(definition);
  const missing = placeholders.filter((p) => !(p in substitutions));
  const unused = Object.keys(substitutions).filter((k) => !placeholders.includes(k));
  if (missing.length > 0 || unused.length > 0) {
    throw new Error(
      `${path.relative(PROJECT_ROOT, definitionPath)}: placeholders without a value: [${missing.join(', ')}], ` +
        `values without a placeholder: [${unused.join(', ')}]`,
    );
  }
}
