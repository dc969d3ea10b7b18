import { type IoTDataPlaneClient, PublishCommand } from '@aws-sdk/client-iot-data-plane';
import type { DeviceMessaging } from '../../core/ports';

/**
 * DeviceMessaging on AWS IoT Data (Publish, QoS 1, JSON payload), as CDF replies to devices. Throttling and other
 * service errors propagate unchanged, with their SDK `name`, for the workflow to retry.
 */
export class IotDataDeviceMessaging implements DeviceMessaging {
  constructor(private readonly iotData: IoTDataPlaneClient) {}

  async publish(topic: string, payload: Record<string, unknown>): Promise<void> {
    await this.iotData.send(
      new PublishCommand({
        topic,
        qos: 1,
        payload: Buffer.from(JSON.stringify(payload), 'utf8'),
        contentType: 'application/json',
      }),
    );
  }
}
