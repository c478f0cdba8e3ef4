/**
 * The broker's Prometheus metrics. Labelled by listener (tcp, tls, ws) so an office engineer can
 * tell the phones on WebSocket from the sensors on TCP, and by reason for every refusal.
 */
import { Counter, Gauge, type Registry } from 'prom-client'

export type ListenerName = 'tcp' | 'tls' | 'ws'
const LISTENERS: readonly ListenerName[] = ['tcp', 'tls', 'ws']

/** What passes through one listener, counted per packet and per write. */
export interface Traffic {
  messagesIn: number
  messagesOut: number
  bytesIn: number
  bytesOut: number
}

export class BrokerMetrics {
  readonly connections: Counter<'listener'>
  readonly connected: Gauge<'listener'>
  readonly connectionsRefused: Counter<'listener' | 'reason'>
  readonly messagesIn: Counter<'listener'>
  readonly messagesOut: Counter<'listener'>
  readonly bytesIn: Counter<'listener'>
  readonly bytesOut: Counter<'listener'>
  readonly authFailures: Counter<'reason'>
  readonly aclDenied: Counter<'action'>
  readonly dropped: Counter<'reason'>
  readonly backpressure: Counter<'reason'>
  readonly disconnects: Counter<'reason'>
  /**
   * The per-packet counts, as plain numbers that the four traffic counters read when scraped. A
   * labelled prom-client inc() hashes and checks its labels every call: four of those a message
   * cost the broker about 4 % of its CPU time under QoS 1 load.
   */
  readonly traffic = Object.fromEntries(LISTENERS.map((l) => [l, { messagesIn: 0, messagesOut: 0, bytesIn: 0, bytesOut: 0 }])) as Record<ListenerName, Traffic>

  constructor(registry: Registry | undefined) {
    const registers = registry ? [registry] : []
    const counter = <L extends string>(name: string, help: string, labelNames: L[]) => new Counter<L>({ name, help, labelNames, registers })
    this.connections = counter('broker_connections_total', 'MQTT connections accepted at the transport, by listener', ['listener'])
    this.connected = new Gauge({ name: 'broker_clients_connected', help: 'Clients past CONNACK, by listener', labelNames: ['listener'], registers })
    this.connectionsRefused = counter('broker_connections_refused_total', 'Connections closed by a protection, by listener and reason', [
      'listener',
      'reason',
    ])
    const traffic = this.traffic
    const tallied = (name: string, help: string, field: keyof Traffic) =>
      new Counter<'listener'>({
        name,
        help,
        labelNames: ['listener'],
        registers,
        collect() {
          this.reset()
          for (const listener of LISTENERS) if (traffic[listener][field] > 0) this.inc({ listener }, traffic[listener][field])
        },
      })
    this.messagesIn = tallied('broker_messages_in_total', 'PUBLISH packets received and authorised, by listener', 'messagesIn')
    this.messagesOut = tallied('broker_messages_out_total', 'PUBLISH packets delivered to subscribers, by listener', 'messagesOut')
    this.bytesIn = tallied('broker_bytes_in_total', 'Bytes read from clients, by listener', 'bytesIn')
    this.bytesOut = tallied('broker_bytes_out_total', 'Bytes written to clients, by listener', 'bytesOut')
    this.authFailures = counter('broker_auth_failures_total', 'CONNECTs refused, by reason', ['reason'])
    this.aclDenied = counter('broker_acl_denied_total', 'Publishes, wills, retained messages and subscriptions refused by the topic ACL', ['action'])
    this.dropped = counter('broker_messages_dropped_total', 'Messages the broker did not route, by reason', ['reason'])
    this.disconnects = counter('broker_forced_disconnects_total', 'Clients the broker disconnected, by reason', ['reason'])
    this.backpressure = counter('broker_backpressure_waits_total', 'Publishes held back to protect the broker, by reason', ['reason'])
  }
}
