/**
 * MQTT topic scheme (docs/contracts.md, "MQTT topics").
 *
 *   dev/{deviceId}/{kind}     device → gateway: reading | scan | camera | report | status
 *   cmd/{deviceId}/{command}  gateway → device: nack, ... (the device subscribes to cmd/{deviceId}/#)
 *
 * The device id is the second level so that a single ACL pattern per direction (`dev/%u/#` to
 * publish, `cmd/%u/#` to subscribe, in Mosquitto's terms) gives each device least privilege.
 */
export const DeviceKinds = ['reading', 'scan', 'camera', 'report', 'status'] as const
export type DeviceKind = (typeof DeviceKinds)[number]

const deviceIdPattern = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/

export function isDeviceId(id: string): boolean {
  return deviceIdPattern.test(id)
}

export interface DeviceTopic {
  deviceId: string
  kind: DeviceKind
}

/** Parses `dev/{deviceId}/{kind}`; anything else, deeper levels included, is not a device topic. */
export function parseDeviceTopic(topic: string): DeviceTopic | undefined {
  const parts = topic.split('/')
  if (parts.length !== 3 || parts[0] !== 'dev') return undefined
  const [, deviceId, kind] = parts as [string, string, string]
  if (!isDeviceId(deviceId)) return undefined
  if (!(DeviceKinds as readonly string[]).includes(kind)) return undefined
  return { deviceId, kind: kind as DeviceKind }
}

export function deviceTopic(deviceId: string, kind: DeviceKind): string {
  return `dev/${deviceId}/${kind}`
}

export function commandTopic(deviceId: string, command: string): string {
  return `cmd/${deviceId}/${command}`
}
