/**
 * The seam every field input plugs into (MQTT, serial, Modbus, OPC UA, camera HTTP). An input
 * turns its transport's bytes into `DeviceMessage`s for the pipeline and acknowledges its device
 * only after `pipeline.accept()` resolves. Its counters are the pipeline's, labelled `input`.
 */
export interface InputHealth {
  ok: boolean
  detail?: string
}

export interface Input {
  readonly name: string
  start(): Promise<void>
  stop(): Promise<void>
  health(): InputHealth
}
