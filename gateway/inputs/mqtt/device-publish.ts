/**
 * What the gateway does with one device PUBLISH, whichever broker delivered it: check the topic,
 * remember the transmission for redelivery recognition, run it through the pipeline, and answer
 * the device on its command topic with a nack or a receipt. `done` comes after the commit.
 */
import { fnv1a } from '../../../common/fnv1a.ts'
import { parseDeviceTopic } from '../../../contracts/topics.ts'
import type { Rejection } from '../../errors.ts'
import type { Pipeline } from '../../pipeline.ts'

export interface DevicePublish {
  topic: string
  payload: Buffer | string
  qos: number
  messageId: number | undefined
  /** MQTT session that carried it (client id), for redelivery recognition; absent for a replayed Will. */
  session: string | undefined
  /** Device the broker authenticated, when it knows; else the topic names it. */
  deviceId: string | undefined
  /**
   * The session carries many devices' messages (the gateway's at an office broker): the topic is
   * then part of the fingerprint, since two devices' Wills have the same payload and the broker
   * may reuse a packet id once it is acknowledged (MQTT-2.3.1-4). Not for a device's own session,
   * so that fingerprints committed by earlier versions still match after an upgrade.
   */
  sharedSession?: boolean
}

export type Reply = (deviceId: string, command: string, body: object) => void

export function ingestDevicePublish(pipeline: Pipeline, input: string, publish: DevicePublish, reply: Reply, done: (err: Error | null) => void): void {
  const receivedAt = Date.now()
  const topic = parseDeviceTopic(publish.topic)
  if (!topic) {
    const deviceId = publish.deviceId ?? publish.topic.split('/')[1] ?? 'unknown'
    pipeline.rejectedTopic(input, deviceId, publish.topic)
    nack(reply, deviceId, publish.topic, { code: 'GW_TOPIC_INVALID', message: `"${publish.topic}" is not dev/{deviceId}/{kind}` })
    done(null)
    return
  }
  const payload = typeof publish.payload === 'string' ? Buffer.from(publish.payload) : publish.payload
  // A QoS 1 packet's (session, packet id) is remembered with the commit, so a redelivery after a
  // lost PUBACK is recognised (MQTT-4.3.2: the receiver may see a message more than once).
  const transmission =
    publish.session !== undefined && publish.qos > 0 && publish.messageId !== undefined
      ? { client: publish.session, packet: publish.messageId, hash: publish.sharedSession ? fnv1a(payload, fnv1a(publish.topic)) : fnv1a(payload) }
      : undefined
  const msg = { input, deviceId: topic.deviceId, kind: topic.kind, raw: payload, receivedAt, transmission }
  pipeline.accept(msg, (err, rejection, receipt) => {
    // A message that can never be accepted is still acknowledged (resending cannot fix it), and
    // the device is told why on its command topic. A scan gets its receipt there too.
    if (rejection) nack(reply, topic.deviceId, publish.topic, rejection)
    if (receipt) reply(topic.deviceId, 'receipt', receipt)
    done(err)
  })
}

function nack(reply: Reply, deviceId: string, topic: string, rejection: Rejection): void {
  reply(deviceId, 'nack', { topic, ...rejection })
}
