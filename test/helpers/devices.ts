/**
 * Devices for the end-to-end tests over MQTT: a certificate from the CA API (`POST /certificates/device`),
 * registered ACTIVE in the local registry and attached to its thing as a factory would, and connections to the
 * runtime's broker with mutual TLS. `close()` ends every connection made.
 */
import { connect as mqttConnect, type MqttClient } from 'mqtt';
import type { LocalCertflow, LocalOptions } from '../../local/certflow';

export interface Device {
  thingName: string;
  certificateId: string;
  certificatePem: string;
  chainPem: string;
  privateKeyPem: string;
}

/** what a device connects with */
export type DeviceCredentials = Pick<Device, 'thingName' | 'certificatePem' | 'privateKeyPem'>;

export interface EnrollOptions {
  /** the signing CA (default: the development issuing CA) */
  issuerId?: string;
  /** a policy attached to the certificate */
  policy?: string;
  /** a thing group the thing joins (the rotation group, for instance) */
  thingGroup?: string;
}

/** A runtime for device tests: free HTTP and MQTT ports, one signing worker, retries at once, no expiry sweep. */
export const deviceRuntimeOptions = (dataDir: string): LocalOptions => ({
  dataDir,
  port: 0,
  mqttPort: 0,
  workers: 1,
  retryIntervalMs: 0,
  expirySweepIntervalMs: 0,
});

/** `runtime` is read at each call, so a test may restart the runtime. */
export function deviceFleet(runtime: () => LocalCertflow) {
  const clients: MqttClient[] = [];
  return {
    async enroll(thingName: string, options: EnrollOptions = {}): Promise<Device> {
      const cf = runtime();
      const res = await fetch(`${cf.url}/certificates/device`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ issuerId: options.issuerId ?? cf.bootstrap.issuingCaId, thingName }),
      });
      const body = (await res.json()) as Device;
      expect(res.status).toBe(201);
      const device = { ...body, thingName };
      await cf.bus.drain(); // the inventory records it
      await cf.registry.createThing({ thingName });
      const { certificateArn } = await cf.registry.register({
        certificatePem: device.certificatePem,
        caCertificatePem: device.chainPem,
        status: 'ACTIVE',
      });
      await cf.registry.attachThingPrincipal(thingName, certificateArn);
      if (options.policy) await cf.registry.attachPolicy(options.policy, certificateArn);
      if (options.thingGroup) await cf.registry.addThingToThingGroup(thingName, options.thingGroup);
      return device;
    },

    /** connects as the thing, trusting `caPem` for the broker; rejects with the CONNACK refusal, TLS error or `closed` */
    connect(device: DeviceCredentials, caPem: string): Promise<MqttClient> {
      return new Promise((resolve, reject) => {
        const c = mqttConnect(runtime().mqttUrl, {
          clientId: device.thingName,
          key: device.privateKeyPem,
          cert: device.certificatePem,
          ca: caPem,
          reconnectPeriod: 0,
          connectTimeout: 5000,
        });
        clients.push(c);
        c.once('connect', () => resolve(c));
        c.once('error', reject);
        c.once('close', () => reject(new Error('closed')));
      });
    },

    async close(): Promise<void> {
      for (const c of clients) await c.endAsync(true).catch(() => undefined);
    },
  };
}
