/**
 * Redacts key material from anything the local console shows (execution inputs, outputs, errors): values under
 * key-like field names, PEM private key blocks inside any string (also inside JSON text such as a Lambda error's
 * Cause), and JSON text carrying such fields.
 */

export const REDACTED = '[redacted]';
export const REDACTED_PEM = '[redacted private key]';

/**
 * privateKey, privateKeyPem, private.key, caKey, signingKey, keyPem, secret, password, passphrase, masterKey … (not
 * `key`, `Key`, `zipKey` or `keyType`: S3 and DynamoDB keys and key types are not key material)
 */
const KEY_FIELD =
  /private.?key|secret|password|passphrase|^(ca|signing|master|encryption)[._-]?key([._-]?(pem|der|material))?$|^key[._-]?(pem|der|material)$/i;

/** a PEM private key block (PKCS#8, encrypted PKCS#8, PKCS#1, SEC1 …), or its start when the text is cut short */
const PEM_PRIVATE_KEY = /-----BEGIN ((?:[A-Z0-9]+ )*)PRIVATE KEY-----(?:[\s\S]*?-----END \1PRIVATE KEY-----|[\s\S]*$)/g;

export const isKeyField = (name: string): boolean => KEY_FIELD.test(name);

const BEGIN = /-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----/;
/** text up to and including an END line whose BEGIN is elsewhere (a key split over lines of a stack trace) */
const UP_TO_END = /^[\s\S]*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----/;

function redactString(text: string): string {
  const trimmed = text.trimStart();
  if ((trimmed.startsWith('{') || trimmed.startsWith('[')) && text.length < 1_000_000) {
    try {
      return JSON.stringify(redactKeyMaterial(JSON.parse(text) as unknown));
    } catch {
      /* not JSON: redact as text */
    }
  }
  return text.replace(PEM_PRIVATE_KEY, REDACTED_PEM).replace(UP_TO_END, REDACTED_PEM);
}

/** Array elements are redacted one by one; a PEM key opened in one string element and closed in a later one (lines
 * of a stack trace) is redacted in every element in between. */
function redactArray(values: unknown[]): unknown[] {
  let inKey = false;
  return values.map((value) => {
    if (typeof value !== 'string') {
      inKey = false;
      return redactKeyMaterial(value);
    }
    if (inKey) {
      const end = UP_TO_END.exec(value);
      if (!end) return REDACTED_PEM;
      inKey = false;
      return redactString(REDACTED_PEM + value.slice(end[0].length));
    }
    // an unterminated BEGIN: the rest of this element is redacted, and the following ones up to the END
    const begin = BEGIN.exec(value);
    if (begin && !value.slice(begin.index).includes('-----END ')) inKey = true;
    return redactString(value);
  });
}

/** A copy of `value` without key material; other values are kept as they are. */
export function redactKeyMaterial(value: unknown): unknown {
  if (typeof value === 'string') return redactString(value);
  if (Array.isArray(value)) return redactArray(value);
  if (value && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value).map(([k, v]) => [
        k,
        isKeyField(k) && v !== null && v !== undefined ? REDACTED : redactKeyMaterial(v),
      ]),
    );
  }
  return value;
}
