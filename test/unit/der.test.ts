import * as der from '../../lambdas/core/pki/der';

describe('der', () => {
  it.each([
    [0, '020100'],
    [127, '02017f'],
    [128, '02020080'],
    [256, '02020100'],
    [2n ** 64n, '0209010000000000000000'],
  ])('encodes INTEGER %s minimally', (n, hex) => {
    expect(der.integer(n).toString('hex')).toBe(hex);
  });

  it('strips leading zeros and adds one before a set top bit', () => {
    expect(der.integerFromUnsigned(Buffer.from('0000ff', 'hex')).toString('hex')).toBe('020200ff');
  });

  it.each([
    ['1.2.840.10045.4.3.2', '06082a8648ce3d040302'],
    ['2.5.29.19', '0603551d13'],
    ['1.2.840.113549.1.9.1', '06092a864886f70d010901'],
  ])('encodes OID %s', (dotted, hex) => {
    expect(der.oid(dotted).toString('hex')).toBe(hex);
    expect(der.readOid(der.readElement(Buffer.from(hex, 'hex')))).toBe(dotted);
  });

  it('uses UTCTime through 2049 and GeneralizedTime from 2050', () => {
    expect(der.time(new Date('2049-12-31T23:59:59Z')).toString('latin1').slice(2)).toBe('491231235959Z');
    expect(der.time(new Date('2049-12-31T23:59:59Z'))[0]).toBe(0x17);
    expect(der.time(new Date('2050-01-01T00:00:00Z')).toString('latin1').slice(2)).toBe('20500101000000Z');
    expect(der.time(new Date('2050-01-01T00:00:00Z'))[0]).toBe(0x18);
  });

  it('encodes long lengths and reads them back', () => {
    const big = der.octetString(Buffer.alloc(300, 1));
    expect(big.subarray(0, 4).toString('hex')).toBe('0482012c');
    expect(der.readElement(big).content.length).toBe(300);
  });

  it.each([
    [0x7f, '307f'],
    [0x80, '308180'],
    [0xff, '3081ff'],
    [0x100, '30820100'],
    [0xffff, '3082ffff'],
    [0x10000, '3083010000'],
    [0x1000000, '308401000000'],
  ])('writes the length %i as DER wants it, from several parts', (length, header) => {
    const parts = [
      Buffer.alloc(Math.floor(length / 3), 1),
      Buffer.alloc(0),
      Buffer.alloc(length - Math.floor(length / 3), 2),
    ];
    const element = der.tlv(0x30, ...parts);
    expect(element.subarray(0, header.length / 2).toString('hex')).toBe(header);
    expect(element.length).toBe(header.length / 2 + length);
    expect(element.subarray(header.length / 2).equals(Buffer.concat(parts))).toBe(true);
    expect(der.readElement(element).content.length).toBe(length);
  });

  it('encodes named bits with the unused-bit count (keyUsage keyCertSign+cRLSign = 03 02 01 06)', () => {
    expect(der.namedBits([5, 6]).toString('hex')).toBe('03020106');
    expect(der.namedBits([0]).toString('hex')).toBe('03020780');
  });

  it('sorts SET OF members', () => {
    expect(der.setOf(Buffer.from([2]), Buffer.from([1])).toString('hex')).toBe('31020102');
  });

  it('throws RangeError on truncated input', () => {
    expect(() => der.readElement(Buffer.from('3005020101', 'hex'))).toThrow(RangeError);
    expect(() => der.readElement(Buffer.from('30', 'hex'))).toThrow(RangeError);
  });
});
