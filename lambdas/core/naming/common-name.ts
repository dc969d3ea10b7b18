import { ValidationError } from '../errors';
import { checkSubjectField } from '../pki/name';

/**
 * Common-name generators, compatible with the bulkcerts module of AWS's Connected Device Framework.
 *
 * A template is parsed the way CDF parses it:
 * - the first backtick-quoted segment is a literal prefix; every backtick segment is removed from the rest;
 * - the first `${…}` names the generator, case-insensitively: `increment`, `increment(N)`, `list` or `static`;
 *   text with no `${…}` is static;
 * - what is left once backtick segments and `${…}` are removed is the generator's value.
 *
 * Names: increment → prefix + upper-case hex of (start + i), no padding; list → prefix + item upper-cased;
 * static → prefix + value upper-cased. `increment(N)` and the list length override the requested quantity.
 */
export type CommonNameSpec =
  | { generator: 'increment'; prefix: string; start: string; quantity?: number }
  | { generator: 'list'; prefix: string; list: string[] }
  | { generator: 'static'; prefix: string; value: string };

const PREFIX_RE = /`(.*?)`/g;
const GENERATOR_RE = /\$\{(.*?)\}/g;
const HEX_RE = /^[0-9A-Fa-f]+$/;

const invalid = (message: string, field = 'certInfo.commonName'): ValidationError =>
  new ValidationError('INVALID_COMMON_NAME', message, { details: { field } });

export function parseCommonNameTemplate(template: string, commonNameList?: unknown): CommonNameSpec {
  if (typeof template !== 'string' || template.length === 0)
    throw invalid('certInfo.commonName must be a non-empty string');
  let rest = template;
  let prefix = '';
  const prefixMatch = [...rest.matchAll(PREFIX_RE)][0];
  if (prefixMatch) {
    prefix = prefixMatch[1]!;
    rest = rest.replace(PREFIX_RE, '');
  }
  const generatorMatch = [...rest.matchAll(GENERATOR_RE)][0];
  if (!generatorMatch) return { generator: 'static', prefix, value: rest };

  const inner = generatorMatch[1]!;
  const call = /^\s*([A-Za-z]+)\s*(?:\((.*)\))?\s*$/.exec(inner);
  const name = call?.[1]?.toLowerCase();
  const value = rest.replace(GENERATOR_RE, '');
  switch (name) {
    case 'increment': {
      if (!HEX_RE.test(value)) {
        throw invalid(
          `the increment start "${value}" must be hexadecimal (e.g. \`prefix\`AB1CD79EF\${increment(100)})`,
        );
      }
      const arg = call?.[2];
      if (arg === undefined) return { generator: 'increment', prefix, start: value.toUpperCase() };
      if (!/^\s*\d+\s*$/.test(arg) || Number(arg) < 1) throw invalid(`increment(${arg}) needs a positive whole number`);
      return { generator: 'increment', prefix, start: value.toUpperCase(), quantity: Number(arg) };
    }
    case 'list': {
      if (!Array.isArray(commonNameList) || commonNameList.length === 0) {
        throw invalid('the list generator needs a non-empty certInfo.commonNameList', 'certInfo.commonNameList');
      }
      commonNameList.forEach((item, i) => {
        if (typeof item !== 'string' || item.length === 0) {
          throw invalid(`certInfo.commonNameList[${i}] must be a non-empty string`, 'certInfo.commonNameList');
        }
      });
      return { generator: 'list', prefix, list: commonNameList as string[] };
    }
    case 'static':
      return { generator: 'static', prefix, value };
    default:
      throw invalid(`unknown common-name generator \${${inner}}: use increment, list or static`);
  }
}

/** The quantity a batch makes: increment(N) and the list length override the requested one. */
export function resolveQuantity(spec: CommonNameSpec, requested: number | undefined): number | undefined {
  if (spec.generator === 'list') return spec.list.length;
  if (spec.generator === 'increment' && spec.quantity !== undefined) return spec.quantity;
  return requested;
}

/** The common name of the certificate at `index` (0-based across the whole batch). */
export function commonNameAt(spec: CommonNameSpec, index: number): string {
  switch (spec.generator) {
    case 'increment':
      return spec.prefix + (BigInt(`0x${spec.start}`) + BigInt(index)).toString(16).toUpperCase();
    case 'list': {
      const item = spec.list[index];
      if (item === undefined) throw new RangeError(`no list entry ${index}`);
      return spec.prefix + item.toUpperCase();
    }
    case 'static':
      return spec.prefix + spec.value.toUpperCase();
  }
}

/**
 * Checks every name a batch of `quantity` would use against RFC 5280 (at most 64 characters, no control
 * characters): the longest increment name is the last, a list is checked item by item.
 */
export function validateCommonNames(spec: CommonNameSpec, quantity: number): void {
  const check = (index: number): void => {
    const error = checkSubjectField('commonName', commonNameAt(spec, index), 'certInfo.commonName');
    if (error) throw new ValidationError('INVALID_COMMON_NAME', error.message, { details: error.details });
  };
  if (spec.generator === 'list') spec.list.forEach((_, i) => check(i));
  else check(Math.max(0, quantity - 1));
}
