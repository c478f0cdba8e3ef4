/** The serial input's own counters, beside the shared InputMetrics (frames, rejections, reconnects). */
import { Counter, type Registry } from 'prom-client'

export interface SerialMetrics {
  replies: Counter<'line' | 'reply'>
  noiseBytes: Counter<'line'>
}

export function createSerialMetrics(registry: Registry): SerialMetrics {
  return {
    replies: new Counter({
      name: 'gateway_serial_replies_total',
      help: 'Replies written to serial devices: ack (committed, the device may forget the frame) or nak (never acceptable), by line',
      labelNames: ['line', 'reply'],
      registers: [registry],
    }),
    noiseBytes: new Counter({
      name: 'gateway_serial_noise_bytes_total',
      help: 'Bytes on a serial line outside any sentence, by line',
      labelNames: ['line'],
      registers: [registry],
    }),
  }
}
