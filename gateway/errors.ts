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

  // Field inputs: what a transport delivered that never became a device message, and link trouble.
  GW_SERIAL_BAD_CHECKSUM: 'a serial frame failed its checksum',
  GW_SERIAL_FRAME_INVALID: 'a serial frame has a checksum that holds but fields that do not parse',
  GW_SERIAL_FRAME_TOO_LONG: 'a serial frame is longer than the line format allows',
  GW_SERIAL_NOISE: 'bytes on a serial line outside any frame',
  GW_SERIAL_PORT_LOST: 'a serial port closed or could not be opened; the input retries with backoff',
  GW_MODBUS_TIMEOUT: 'a Modbus slave did not answer a poll in time',
  GW_MODBUS_CRC: 'a Modbus response failed its CRC',
  GW_MODBUS_FRAME_INVALID: 'a Modbus response had a good CRC but the wrong length, unit or function',
  GW_MODBUS_EXCEPTION: 'a Modbus slave answered with an exception response',
  GW_MODBUS_SLAVE_OFFLINE: 'a Modbus slave stopped answering; its sensors are reported offline',
  GW_OPCUA_CONNECT_FAILED: 'an OPC UA server could not be reached or refused the session',
  GW_OPCUA_LINK_SILENT: 'no keep-alive or notification from an OPC UA subscription for too long; the link is set up again',
  GW_OPCUA_BAD_STATUS: 'an OPC UA value arrived with a Bad or Uncertain status code',
  GW_OPCUA_NODE_INVALID: 'an OPC UA NodeId in the config does not exist on the server',
  GW_CAMERA_AUTH_FAILED: 'a camera event was pushed without valid credentials',
  GW_CAMERA_EVENT_INVALID: 'a camera event could not be parsed (XML, multipart or JSON)',
  GW_CAMERA_SNAPSHOT_DROPPED: 'a camera snapshot was not kept (too large, or the quota is full)',
} as const

export type GatewayErrorCode = keyof typeof GatewayErrorCodes

export interface Rejection {
  code: GatewayErrorCode
  message: string
  problems?: { path: string; message: string }[]
}
