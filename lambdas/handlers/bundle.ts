/**
 * Middleware for the Lambda entry points (AWS only; the local runtime calls `createHandler(deps)` directly):
 * environment check at cold start, Powertools logger with the Lambda context, JSON logs.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import middy from '@middy/core';
import type { Context } from 'aws-lambda';
import type { z } from 'zod';
import { readEnv } from './env';

export const logger = new Logger({ serviceName: 'certflow' });

type Handler<E, R> = (event: E, context: Context) => Promise<R>;

/**
 * Wraps `build(env)` → handler: the env is validated once per container and the handler built once; each
 * invocation gets the logger context. Step Functions task Lambdas throw named errors that the ASL matches.
 * `build` may be async: the entry points load their AWS wiring there, with `import()`, so that the local runtime,
 * which imports the same modules for their `createHandler`, never loads SDK clients it does not call.
 */
export function lambdaBundle<S extends z.ZodObject, E, R>(
  schema: S,
  build: (env: z.infer<S>) => Handler<E, R> | Promise<Handler<E, R>>,
) {
  let inner: Promise<Handler<E, R>> | undefined;
  return middy(async (event: E, context: Context): Promise<R> => {
    // a build that fails (an incomplete environment) is tried again at the next invocation
    inner ??= Promise.resolve()
      .then(() => build(readEnv(schema)))
      .catch((error: unknown) => {
        inner = undefined;
        throw error;
      });
    return (await inner)(event, context);
  }).use(injectLambdaContext(logger, { resetKeys: true }));
}
