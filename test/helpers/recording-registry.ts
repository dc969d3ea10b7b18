/**
 * A DeviceRegistry that records every port call of a real registry (the local one on dynalite) and can make one
 * method fail once: for tests that assert the calls a flow makes, in order, and how it survives a fault.
 */
import type { LocalDeviceRegistry } from '../../lambdas/adapters/local/local-device-registry';
import type { DeviceRegistry } from '../../lambdas/core/ports';

/** A short text of a call argument: certificate ids and ARNs by their first 8 hex digits. */
const argText = (arg: unknown): string => {
  if (typeof arg !== 'string') return JSON.stringify(arg);
  const id = /(?:^|cert\/)([0-9a-f]{64})$/.exec(arg)?.[1];
  return id ? id.slice(0, 8) : arg;
};

/**
 * The registry the workflows see: the real LocalDeviceRegistry, each port call recorded in order (`method args…`;
 * register as `register STATUS[ withCa]`) and, through `failNext`, a method failing once (fault injection).
 */
export interface RecordingRegistry {
  registry: DeviceRegistry;
  calls: string[];
  failNext: Map<string, Error>;
  /** ids of every certificate registered through the port */
  registered: Set<string>;
}

export function recording(local: LocalDeviceRegistry): RecordingRegistry {
  const calls: string[] = [];
  const failNext = new Map<string, Error>();
  const registered = new Set<string>();
  const registry = new Proxy(local, {
    get(target, property, receiver) {
      const value: unknown = Reflect.get(target, property, receiver);
      if (typeof property !== 'string' || typeof value !== 'function') return value;
      return async (...args: unknown[]) => {
        if (property === 'register') {
          const input = args[0] as { status: string; caCertificatePem?: string };
          calls.push(`register ${input.status}${input.caCertificatePem ? ' withCa' : ''}`);
        } else {
          calls.push([property, ...args.map(argText)].join(' '));
        }
        const failure = failNext.get(property);
        if (failure) {
          failNext.delete(property);
          throw failure;
        }
        const result: unknown = await (value as (...a: unknown[]) => Promise<unknown>).apply(target, args);
        if (property === 'register') registered.add((result as { certificateId: string }).certificateId);
        return result;
      };
    },
  }) as DeviceRegistry;
  return { registry, calls, failNext, registered };
}
