import { awsRotationDeps } from '../adapters/aws/rotation-deps';
import { defaultClients } from '../adapters/aws/bulk-deps';
import { publishReply, type RotationDeps } from '../core/rotation/service';
import { lambdaBundle } from './bundle';
import { RotationEnv } from './env';

/** ReplyAccepted / ReplyRejected (both workflows): the answer on `…/accepted` or `{ message: REASON }` on `…/rejected`. */
export const createHandler = (deps: RotationDeps) => (input: unknown) => publishReply(deps, input);

export const handler = lambdaBundle(RotationEnv, (env) => createHandler(awsRotationDeps(env, defaultClients())));
