/**
 * Typing shim for aws-sdk-client-mock in this repository.
 *
 * aws-sdk-client-mock 4.1 (and its jest matchers) is typed against the `@smithy/types` found at the top of
 * node_modules, which is 2.x (hoisted there by @aws-sdk/client-acm-pca 3.523), while the other clients are built on
 * `@smithy/types` 4.x. The two `MiddlewareStack` types are incompatible, so tsc rejects every command class handed to
 * `on()`, `commandCalls()` or a matcher. At run time everything works. `cmd()` re-types a command class for the mock
 * API while keeping its own input and output types; `mockSdk()` mocks a client class. Once every client resolves the
 * same `@smithy/types` major, both can become plain `mockClient(X)` / `X` again.
 */
import type { MetadataBearer } from '@smithy/types';
import { PutEventsCommand, type PutEventsRequestEntry } from '@aws-sdk/client-eventbridge';
import { type AwsCommand, type AwsStub, mockClient } from 'aws-sdk-client-mock';

/** Any SDK v3 command class, whatever @smithy/types it was built with. */
export type CommandClass = abstract new (input: never) => {
  readonly input: object;
  resolveMiddleware: (...args: never[]) => (args: never) => Promise<{ output: unknown }>;
};

export type InputOf<C extends CommandClass> = InstanceType<C>['input'];
export type OutputOf<C extends CommandClass> =
  ReturnType<InstanceType<C>['resolveMiddleware']> extends (args: never) => Promise<{ output: infer O }> ? O : never;

/** The command class, typed the way aws-sdk-client-mock expects it. */
export function cmd<C extends CommandClass>(
  command: C,
): new (input: InputOf<C>) => AwsCommand<InputOf<C>, OutputOf<C> & MetadataBearer> {
  return command as unknown as new (input: InputOf<C>) => AwsCommand<InputOf<C>, OutputOf<C> & MetadataBearer>;
}

/** `mockClient(ClientClass)`: replaces `send` on every instance of the class. */
export function mockSdk(client: { prototype: object }): AwsStub<object, MetadataBearer, unknown> {
  return mockClient(client as never);
}

/** How callSequence names one call: `Service.Operation` plus whatever the test wants to see of its input. */
export type CallLabel = (service: string, operation: string, input: Record<string, unknown>) => string;

/**
 * The calls every mock received, in the order they were made, as `Service.Command` (e.g. `SSM.GetParameter`), or as
 * `label` names them.
 */
export function callSequence(
  mocks: Record<string, AwsStub<object, MetadataBearer, unknown>>,
  label: CallLabel = (service, operation) => `${service}.${operation}`,
): string[] {
  const calls = Object.entries(mocks).flatMap(([service, mock]) =>
    mock.calls().map((call) => {
      const command = call.args[0] as { constructor: { name: string }; input: Record<string, unknown> };
      return { call, name: label(service, command.constructor.name.replace(/Command$/, ''), command.input) };
    }),
  );
  return calls.sort((a, b) => (a.call.calledBefore(b.call) ? -1 : 1)).map((c) => c.name);
}

/** Every event an EventBridge mock was sent, in order, with its detail parsed. */
export function sentEvents(
  ebMock: AwsStub<object, MetadataBearer, unknown>,
): { entry: PutEventsRequestEntry; detail: Record<string, unknown> }[] {
  return ebMock
    .commandCalls(cmd(PutEventsCommand))
    .flatMap((c) => c.args[0].input.Entries ?? [])
    .map((entry) => ({ entry, detail: JSON.parse(entry.Detail ?? '{}') as Record<string, unknown> }));
}
