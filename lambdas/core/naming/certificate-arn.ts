import { ValidationError } from '../errors';

/** An AWS IoT certificate ARN (`arn:{partition}:iot:{region}:{account}:cert/{id}`), the id being SHA-256 hex. */
const CERTIFICATE_ARN = /^arn:aws[a-z-]*:iot:[a-z0-9-]+:\d{12}:cert\/([0-9a-f]{64})$/;

/** The certificate id of a certificate ARN; undefined for any other principal (an IAM or Cognito one). */
export function certificateIdOfArnOrUndefined(principalArn: string): string | undefined {
  return CERTIFICATE_ARN.exec(principalArn)?.[1];
}

/** The certificate id of a certificate ARN; a ValidationError (INVALID_PRINCIPAL) for anything else. */
export function certificateIdOfArn(principalArn: string): string {
  const id = certificateIdOfArnOrUndefined(principalArn);
  if (id === undefined) {
    throw new ValidationError('INVALID_PRINCIPAL', `${principalArn} is not a certificate ARN`, {
      details: { principalArn },
    });
  }
  return id;
}
