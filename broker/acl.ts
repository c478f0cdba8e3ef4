/**
 * Topic ACLs, least privilege (docs/contracts.md, "MQTT topics"):
 * a device publishes only under `dev/{itself}/...` and subscribes only under `cmd/{itself}/...`;
 * a gateway (when the broker runs apart from it) reads every device's `dev/...` and answers on
 * `cmd/...`. A Will and a retained message are checked exactly like a publish.
 */
export interface Identity {
  /** The authenticated device or gateway, or undefined for an anonymous client in lab mode. */
  deviceId: string | undefined
  /** Absent means 'device'. */
  role?: 'device' | 'gateway'
}

/**
 * A topic name a message may carry: not empty, no wildcards (MQTT-3.3.2-2), no U+0000
 * (MQTT-4.7.3-2), and well-formed UTF-8 (MQTT-1.5.3-1). mqtt-packet has decoded the topic by
 * now, turning ill-formed bytes into U+FFFD, so U+FFFD is refused as well (a real U+FFFD in a
 * topic is refused with it). Aedes checks PUBLISH topics for wildcards itself but not a Will's.
 */
export function isTopicName(topic: string): boolean {
  return topic.length > 0 && !topic.includes('+') && !topic.includes('#') && isWellFormed(topic)
}

/** An MQTT UTF-8 string as the spec allows it: no U+0000 (MQTT-1.5.3-2), no ill-formed UTF-8 (as above). */
export function isWellFormed(text: string | undefined): boolean {
  return text === undefined || (!text.includes('\u0000') && !text.includes('\uFFFD'))
}

export function mayPublish(identity: Identity, topic: string, allowAnonymous: boolean): boolean {
  if (!isTopicName(topic)) return false
  // Nobody publishes into the broker's own namespace ($SYS, MQTT-4.7.2-1 reserves `$` topics).
  if (topic.startsWith('$')) return false
  if (identity.deviceId === undefined) return allowAnonymous
  if (identity.role === 'gateway') return topic.startsWith('cmd/') && topic.length > 4
  return under(topic, 'dev/', identity.deviceId)
}

export function maySubscribe(identity: Identity, filter: string, allowAnonymous: boolean): boolean {
  // Lab mode is an open ACL for reading, $SYS included, as Mosquitto's is.
  if (identity.deviceId === undefined) return allowAnonymous
  // Not `$share/{group}/...`: Aedes 1.2 has no shared subscriptions and would take it as a filter
  // that matches nothing, so a gateway would be granted it and then receive nothing, silently.
  if (identity.role === 'gateway') return filter.startsWith('dev/') && filter.length > 4
  const own = `cmd/${identity.deviceId}/`
  // `cmd/{id}/#` and `cmd/{id}/+` are fine: wildcards below the device's own level cannot reach
  // another device. A filter like `cmd/+/x` fails the prefix test because `+` is not the id.
  return filter.startsWith(own) && filter.length > own.length
}

/**
 * Whether a message on `topic` may be delivered to this client: the receiving side of the ACL,
 * checked at every delivery. A subscription is checked when it is made, but Aedes also delivers
 * what a persistent session queued while offline, and the session may have been resumed under
 * another identity or hold a filter that was refused; this is the check that holds regardless.
 */
export function mayReceive(identity: Identity, topic: string, allowAnonymous: boolean): boolean {
  if (identity.deviceId === undefined) return allowAnonymous
  if (identity.role === 'gateway') return topic.startsWith('dev/')
  return under(topic, 'cmd/', identity.deviceId)
}

/**
 * Whether `topic` is `{root}{id}/...`. Checked in place: this runs for every publish and every
 * delivery, and a template string per call is an allocation each time.
 */
function under(topic: string, root: string, id: string): boolean {
  return topic.startsWith(root) && topic.startsWith(id, root.length) && topic.charCodeAt(root.length + id.length) === 47 /* '/' */
}
