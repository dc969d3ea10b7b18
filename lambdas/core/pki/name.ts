import { ValidationError } from '../errors';
import * as der from './der';
import { OID } from './oids';

/** The subject fields CDF's certInfo carries (names kept for compatibility). */
export interface SubjectFields {
  commonName?: string;
  organization?: string;
  organizationalUnit?: string;
  locality?: string;
  stateName?: string;
  country?: string;
  emailAddress?: string;
  distinguishedNameQualifier?: string;
}

type Field = keyof SubjectFields;

interface FieldRule {
  oid: string;
  /** RFC 5280 Appendix A upper bound */
  max: number;
  encode: (v: string) => Buffer;
  pattern?: RegExp;
  hint?: string;
}

const PRINTABLE = /^[A-Za-z0-9 '()+,\-./:=?]+$/;

/** In the order the RDNs appear in the DN (the order openssl uses: C, ST, L, O, OU, CN, emailAddress). */
const RULES: [Field, FieldRule][] = [
  [
    'country',
    {
      oid: OID.country,
      max: 2,
      encode: der.printableString,
      pattern: /^[A-Z]{2}$/,
      hint: 'two upper-case letters (ISO 3166)',
    },
  ],
  ['stateName', { oid: OID.stateName, max: 128, encode: der.utf8String }],
  ['locality', { oid: OID.locality, max: 128, encode: der.utf8String }],
  ['organization', { oid: OID.organization, max: 64, encode: der.utf8String }],
  ['organizationalUnit', { oid: OID.organizationalUnit, max: 64, encode: der.utf8String }],
  ['commonName', { oid: OID.commonName, max: 64, encode: der.utf8String }],
  [
    'distinguishedNameQualifier',
    {
      oid: OID.distinguishedNameQualifier,
      max: 64,
      encode: der.printableString,
      pattern: PRINTABLE,
      hint: 'PrintableString characters',
    },
  ],
  [
    'emailAddress',
    { oid: OID.emailAddress, max: 255, encode: der.ia5String, pattern: /^[^\s@]+@[^\s@]+$/, hint: 'an e-mail address' },
  ],
];

// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;

/** Checks one field's value; returns a typed error naming the field, or undefined when the value is fine. */
export function checkSubjectField(field: Field, value: unknown, path: string = field): ValidationError | undefined {
  const rule = RULES.find(([f]) => f === field)?.[1];
  if (!rule)
    return new ValidationError('UNKNOWN_FIELD', `${path} is not a subject field`, { details: { field: path } });
  if (typeof value !== 'string' || value.length === 0) {
    return new ValidationError('INVALID_SUBJECT', `${path} must be a non-empty string`, { details: { field: path } });
  }
  if ([...value].length > rule.max) {
    return new ValidationError('INVALID_SUBJECT', `${path} is longer than ${rule.max} characters (RFC 5280)`, {
      details: { field: path },
    });
  }
  if (CONTROL.test(value)) {
    return new ValidationError('INVALID_SUBJECT', `${path} contains control characters`, { details: { field: path } });
  }
  if (rule.pattern && !rule.pattern.test(value)) {
    return new ValidationError('INVALID_SUBJECT', `${path} must be ${rule.hint}`, { details: { field: path } });
  }
  return undefined;
}

/** Encodes the subject as a DER Name; throws INVALID_SUBJECT naming the faulty field. An empty subject is refused. */
export function encodeName(subject: SubjectFields): Buffer {
  const rdns: Buffer[] = [];
  for (const [field, rule] of RULES) {
    const value = subject[field];
    if (value === undefined) continue;
    const error = checkSubjectField(field, value);
    if (error) throw error;
    rdns.push(der.setOf(der.sequence(der.oid(rule.oid), rule.encode(value))));
  }
  if (rdns.length === 0) throw new ValidationError('INVALID_SUBJECT', 'the subject needs at least one field');
  return der.sequence(...rdns);
}

/**
 * Encodes a Name whose common name changes per certificate while the other fields stay: returns a function
 * that builds the DER for one common name from pre-encoded parts (the bulk hot path).
 */
export function nameTemplate(subject: Omit<SubjectFields, 'commonName'>): (commonName: string) => Buffer {
  const before: Buffer[] = [];
  const after: Buffer[] = [];
  let seenCn = false;
  for (const [field, rule] of RULES) {
    if (field === 'commonName') {
      seenCn = true;
      continue;
    }
    const value = subject[field];
    if (value === undefined) continue;
    const error = checkSubjectField(field, value);
    if (error) throw error;
    (seenCn ? after : before).push(der.setOf(der.sequence(der.oid(rule.oid), rule.encode(value))));
  }
  const prefix = Buffer.concat(before);
  const suffix = Buffer.concat(after);
  const cnOid = der.oid(OID.commonName);
  return (commonName: string) => {
    const error = checkSubjectField('commonName', commonName);
    if (error) throw error;
    const cn = der.tlv(der.Tag.Set, der.sequence(cnOid, der.utf8String(commonName)));
    return der.sequence(prefix, cn, suffix);
  };
}
