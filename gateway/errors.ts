/**
 * The gateway's error catalogue. Each code is a metric label (`code`), a log field (`code`) and,
 * for a device's own mistakes, the `code` of the nack the device gets on `cmd/{deviceId}/nack`.
 */
export const GatewayErrorCodes = {
  GW_TOPIC_INVALID: 'topic is not dev/{deviceId}/{kind} with a known kind',
  GW_DEVICE_UNKNOWN: 'device is not in this office config',
  GW_PAYLOAD_TOO_LARGE: 'payload is larger than the gateway accepts',
  GW_PAYLOAD_NOT_JSON: 'payload is not UTF-8 JSON',
  GW_PAYLOAD_INVALID: 'payload does not match the schema for its kind',
  GW_OUTBOX_COMMIT_FAILED: 'the outbox could not commit; the device was not acknowledged',
  GW_UPLINK_FAILED: 'the cloud API could not be reached or failed',
  GW_UPLINK_REFUSED: 'the cloud API refused the batch',
} as const

export type GatewayErrorCode = keyof typeof GatewayErrorCodes

export interface Rejection {
  code: GatewayErrorCode
  message: string
  problems?: { path: string; message: string }[]
}
