import { ValidationError } from '../../lambdas/core/errors';
import {
  commonNameAt,
  parseCommonNameTemplate,
  resolveQuantity,
  validateCommonNames,
} from '../../lambdas/core/naming/common-name';

const names = (template: string, quantity?: number, list?: string[]): string[] => {
  const spec = parseCommonNameTemplate(template, list);
  const n = resolveQuantity(spec, quantity)!;
  validateCommonNames(spec, n);
  return Array.from({ length: n }, (_, i) => commonNameAt(spec, i));
};

describe('common-name generators (CDF bulkcerts compatible)', () => {
  it("ok/CDF README example: `templateFoo::`AB1CD79EF${increment(100)} gives 100 names, hex counting (CDF's code: …7A52)", () => {
    const out = names('`templateFoo::`AB1CD79EF${increment(100)}', 5);
    expect(out).toHaveLength(100); // increment(N) overrides quantity
    expect(out[0]).toBe('templateFoo::AB1CD79EF');
    expect(out[1]).toBe('templateFoo::AB1CD79F0');
    expect(out[99]).toBe('templateFoo::AB1CD7A52');
    expect(new Set(out).size).toBe(100);
  });

  it('ok/increment without (N) uses the requested quantity; generator name is case-insensitive', () => {
    expect(names('ab${INCREMENT}', 3)).toEqual(['AB', 'AC', 'AD']);
  });

  it('ok/increment keeps the prefix as is and upper-cases hex with no padding', () => {
    expect(names('`Dev-`00ff${increment(2)}')).toEqual(['Dev-FF', 'Dev-100']);
  });

  it('ok/increment beyond 2^53 stays exact', () => {
    expect(names('FFFFFFFFFFFFFFFF${increment(2)}')).toEqual(['FFFFFFFFFFFFFFFF', '10000000000000000']);
  });

  it('ok/CDF README example: `templateFoo::`${list} with commonNameList, list length overrides quantity', () => {
    expect(names('`templateFoo::`${list}', 100, ['unique1', 'unique2', 'unique3'])).toEqual([
      'templateFoo::UNIQUE1',
      'templateFoo::UNIQUE2',
      'templateFoo::UNIQUE3',
    ]);
  });

  it('ok/CDF README example: `templateFoo::`Static${static} gives the same upper-cased name each time', () => {
    expect(names('`templateFoo::`Static${static}', 3)).toEqual([
      'templateFoo::STATIC',
      'templateFoo::STATIC',
      'templateFoo::STATIC',
    ]);
  });

  it('ok/no ${…} is static, upper-cased as CDF does', () => {
    expect(names('my-device', 2)).toEqual(['MY-DEVICE', 'MY-DEVICE']);
    expect(names('`fixed`', 1)).toEqual(['fixed']);
  });

  it.each([
    ['error/non-hex increment start', 'XYZ${increment(3)}', undefined],
    ['error/unknown generator', 'abc${random}', undefined],
    ['error/list without commonNameList', '${list}', undefined],
    ['error/list with an empty commonNameList', '${list}', []],
    ['error/increment(0)', 'ab${increment(0)}', undefined],
    ['error/increment(x)', 'ab${increment(x)}', undefined],
    ['error/empty template', '', undefined],
  ])('%s → 400 INVALID_COMMON_NAME', (_n, template, list) => {
    let caught: unknown;
    try {
      names(template, 1, list);
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(ValidationError);
    expect((caught as ValidationError).code).toBe('INVALID_COMMON_NAME');
    expect((caught as ValidationError).status).toBe(400);
  });

  it('error/the last increment name is checked against the 64-character limit', () => {
    const prefix = 'p'.repeat(60);
    expect(() => names(`\`${prefix}\`FFFF\${increment(1)}`)).not.toThrow();
    expect(() => names(`\`${prefix}\`FFFF\${increment(2)}`)).toThrow(/64 characters/);
  });
});
