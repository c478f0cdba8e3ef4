/**
 * Topic ACLs, least privilege (docs/contracts.md, "MQTT topics"):
 * a device publishes only under `dev/{itself}/...` and subscribes only under `cmd/{itself}/...`.
 * A Will is checked exactly like a publish, at CONNECT time and again when it fires.
 */
export interface Identity {
  /** The authenticated device, or undefined for an anonymous client in lab mode. */
  deviceId: string | undefined
}

export function mayPublish(identity: Identity, topic: string, allowAnonymous: boolean): boolean {
  // Nobody publishes into the broker's own namespace ($SYS, MQTT-4.7.2-1 reserves `$` topics).
  if (topic.startsWith('$')) return false
  if (identity.deviceId === undefined) return allowAnonymous
  return topic.startsWith(`dev/${identity.deviceId}/`)
}

export function maySubscribe(identity: Identity, filter: string, allowAnonymous: boolean): boolean {
  if (identity.deviceId === undefined) return allowAnonymous && !filter.startsWith('$')
  const own = `cmd/${identity.deviceId}/`
  // `cmd/{id}/#` and `cmd/{id}/+` are fine: wildcards below the device's own level cannot reach
  // another device. A filter like `cmd/+/x` fails the prefix test because `+` is not the id.
  return filter.startsWith(own) && filter.length > own.length
}
