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

/**
 * Wraps `build(env)` → handler: the env is validated once per container and the handler built once; each
 * invocation gets the logger context. Step Functions task Lambdas throw named errors that the ASL matches.
 */
export function lambdaBundle<S extends z.ZodObject, E, R>(
  schema: S,
  build: (env: z.infer<S>) => (event: E, context: Context) => Promise<R>,
) {
  let inner: ((event: E, context: Context) => Promise<R>) | undefined;
  return middy(async (event: E, context: Context): Promise<R> => {
    inner ??= build(readEnv(schema));
    return inner(event, context);
  }).use(injectLambdaContext(logger, { resetKeys: true }));
}
