import { awsRotationDeps } from '../adapters/aws/rotation-deps';
import { defaultClients } from '../adapters/aws/bulk-deps';
import { rollBackCertificate, type RotationDeps } from '../core/rotation/service';
import { lambdaBundle } from './bundle';
import { RotationEnv } from './env';

/** RollBackCertificate (rotation-get): the reply could not be sent, so the vended certificate is undone. */
export const createHandler = (deps: RotationDeps) => (input: unknown) => rollBackCertificate(deps, input);

export const handler = lambdaBundle(RotationEnv, (env) => createHandler(awsRotationDeps(env, defaultClients())));
