// zod, apart from name.ts: the signing threads load name.ts (subject encoding) and need no schema library there
import { z } from 'zod';

/**
 * The subject fields other than the common name, as request schemas declare them (values are checked by
 * checkSubjectField / encodeName, which know RFC 5280's limits).
 */
export const subjectFieldsShape = {
  organization: z.string().optional(),
  organizationalUnit: z.string().optional(),
  locality: z.string().optional(),
  stateName: z.string().optional(),
  country: z.string().optional(),
  emailAddress: z.string().optional(),
  distinguishedNameQualifier: z.string().optional(),
};
