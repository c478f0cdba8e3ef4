/**
 * The seam every field input plugs into (MQTT, serial, Modbus, OPC UA, camera HTTP). An input
 * turns its transport's bytes into `DeviceMessage`s for the pipeline and acknowledges its device
 * only after `pipeline.accept()` calls back, which is after the outbox commit. The pipeline counts
 * what it receives and rejects (labelled `input`); the input counts what happens on its transport
 * before that (frames, transport-level rejections, reconnects) in `InputMetrics`.
 */
import type { Registry } from 'prom-client'
import type { Logger } from '../../common/logger.ts'
import type { GatewayConfig } from '../config/schema.ts'
import type { GatewayMetrics } from '../metrics.ts'
import type { Pipeline } from '../pipeline.ts'

export interface InputHealth {
  ok: boolean
  detail?: string
}

export interface Input {
  readonly name: string
  start(): Promise<void>
  stop(): Promise<void>
  health(): InputHealth
  /** The devices of a reloaded office config, for inputs that log devices in (MQTT, camera HTTP). */
  replaceDevices?(devices: GatewayConfig['devices']): void
}

/** What an input is given when the gateway builds it. */
export interface InputContext {
  config: GatewayConfig
  pipeline: Pipeline
  /** Already a child logger with `component: 'input'` and `input: <name>`. */
  logger: Logger
  metrics: GatewayMetrics
  /** For an input's own metrics (prefix them `gateway_<input>_`). */
  registry: Registry
  /** The gateway's data directory (absolute), for what an input keeps on disk. */
  dataDir: string
}

/**
 * The transport-level counters of one input, labelled once. `source` names the port, slave,
 * server or camera; `reason` is a short snake_case word (bad_checksum, oversized, timeout, ...).
 */
export class InputMetrics {
  constructor(
    private readonly metrics: GatewayMetrics,
    readonly input: string,
  ) {}

  frame(source: string, n = 1): void {
    this.metrics.inputFrames.inc({ input: this.input, source }, n)
  }

  rejected(source: string, reason: string): void {
    this.metrics.inputRejected.inc({ input: this.input, source, reason })
  }

  reconnect(source: string): void {
    this.metrics.inputReconnects.inc({ input: this.input, source })
  }

  connected(source: string, up: boolean): void {
    this.metrics.inputConnected.set({ input: this.input, source }, up ? 1 : 0)
  }
}
