/** Request bodies of the CA hierarchy API (zod: the same schemas validate requests and document the API). */
import { z } from 'zod';
import { KEY_TYPES } from '../pki/keys';
import { REVOCATION_REASONS } from '../pki/crl';
import { subjectFieldsShape } from '../pki/name-schema';

export const SubjectSchema = z.object({ commonName: z.string().min(1).max(64), ...subjectFieldsShape }).strict();

const validityDays = z.number().int().min(1).max(36_500);

export const CreateCaBodySchema = z
  .object({
    subject: SubjectSchema,
    keyType: z.enum(KEY_TYPES).optional(),
    validityDays: validityDays.optional(),
    pathLength: z.number().int().min(0).max(16).optional(),
  })
  .strict();
export type CreateCaBody = z.infer<typeof CreateCaBodySchema>;

export const ServerCertificateBodySchema = z
  .object({
    issuerId: z.string().regex(/^[0-9a-f]{64}$/, 'a certflow CA id (64 hex characters)'),
    fqdn: z.string().min(1).max(253),
    sans: z
      .object({ dns: z.array(z.string()).optional(), ip: z.array(z.string()).optional() })
      .strict()
      .optional(),
    subject: SubjectSchema.omit({ commonName: true }).optional(),
    keyType: z.enum(KEY_TYPES).optional(),
    validityDays: validityDays.optional(),
  })
  .strict();
export type ServerCertificateBody = z.infer<typeof ServerCertificateBodySchema>;

export const DeviceCertificateBodySchema = z
  .object({
    issuerId: z.string().regex(/^[0-9a-f]{64}$/, 'a certflow CA id (64 hex characters)'),
    /** the device id: the thing name; a UUID is generated when absent */
    thingName: z
      .string()
      .regex(/^[a-zA-Z0-9:_-]{1,128}$/, 'an AWS IoT thing name (1–128 of a-z A-Z 0-9 : _ -)')
      .optional(),
    /** PEM; when given, the certificate carries the CSR's key and subject and no private key is returned */
    csr: z.string().min(1).optional(),
    subject: SubjectSchema.omit({ commonName: true }).optional(),
    keyType: z.enum(KEY_TYPES).optional(),
    validityDays: validityDays.optional(),
  })
  .strict();
export type DeviceCertificateBody = z.infer<typeof DeviceCertificateBodySchema>;

const reasons = Object.keys(REVOCATION_REASONS) as [
  keyof typeof REVOCATION_REASONS,
  ...(keyof typeof REVOCATION_REASONS)[],
];

export const RevokeBodySchema = z.object({ reason: z.enum(reasons).optional() }).strict();
export type RevokeBody = z.infer<typeof RevokeBodySchema>;

export const ListCertificatesQuerySchema = z
  .object({
    issuer: z.string().min(1).optional(),
    status: z.enum(['active', 'revoked']).optional(),
    expiringBefore: z.iso.datetime({ offset: true }).optional(),
    limit: z.coerce.number().int().min(1).max(1000).optional(),
    nextToken: z.string().optional(),
  })
  .strict();
export type ListCertificatesQuery = z.infer<typeof ListCertificatesQuerySchema>;
