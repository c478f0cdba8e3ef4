/** The gateway's MQTT input, whichever way it reaches devices (config `broker.mode`). */
import type { RunningBroker } from '../../../broker/broker.ts'
import type { GatewayConfig } from '../../config/schema.ts'
import type { Input } from '../input.ts'

export interface MqttInput extends Input {
  /** The embedded broker's TCP port; undefined with an external broker. */
  readonly port: number | undefined
  /** The embedded broker; undefined with an external broker. */
  readonly broker: RunningBroker | undefined
  /** A changed office config: who may connect (embedded) or whose messages count (both). */
  replaceDevices(devices: GatewayConfig['devices']): void
}
