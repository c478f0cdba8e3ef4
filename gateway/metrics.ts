/**
 * Every gateway metric in one place, so names and labels stay consistent and the README's
 * metrics table can be checked against this file.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'

/** `collectOutbox` refreshes the outbox gauges at scrape time (they are read from SQLite, not counted). */
export function createGatewayMetrics(collectOutbox: () => void = () => {}, registry = new Registry()) {
  const registers = [registry]
  return {
    registry,
    received: new Counter({
      name: 'gateway_messages_received_total',
      help: 'Device messages received, by input and kind',
      labelNames: ['input', 'kind'],
      registers,
    }),
    rejected: new Counter({
      name: 'gateway_messages_rejected_total',
      help: 'Device messages rejected, by input and error code',
      labelNames: ['input', 'code'],
      registers,
    }),
    inputFrames: new Counter({
      name: 'gateway_input_frames_total',
      help: 'Frames, polls, notifications or requests an input took off its transport, by input and source (port, slave, server, camera)',
      labelNames: ['input', 'source'],
      registers,
    }),
    inputRejected: new Counter({
      name: 'gateway_input_rejected_total',
      help: 'What an input refused before the pipeline (bad checksum, oversized frame, failed camera login, ...), by input, source and reason',
      labelNames: ['input', 'source', 'reason'],
      registers,
    }),
    inputReconnects: new Counter({
      name: 'gateway_input_reconnects_total',
      help: 'Times an input reopened its transport (serial port back, OPC UA session re-created), by input and source',
      labelNames: ['input', 'source'],
      registers,
    }),
    inputConnected: new Gauge({
      name: 'gateway_input_connected',
      help: '1 while an input has its transport open (port, server session), 0 otherwise, by input and source',
      labelNames: ['input', 'source'],
      registers,
    }),
    redeliveries: new Counter({
      name: 'gateway_redeliveries_dropped_total',
      help: 'QoS 1 redeliveries of messages already committed (acknowledged again, not stored twice)',
      labelNames: ['input'],
      registers,
    }),
    reduced: new Counter({
      name: 'gateway_readings_summarised_total',
      help: 'Readings not forwarded on their own (report by exception); they count in their minute aggregate',
      registers,
    }),
    sourceTimeReplaced: new Counter({
      name: 'gateway_source_time_replaced_total',
      help: 'Messages whose device time was implausible and replaced by the receive time',
      labelNames: ['reason'],
      registers,
    }),
    committed: new Counter({
      name: 'gateway_outbox_rows_added_total',
      help: 'Envelopes committed to the outbox, by kind',
      labelNames: ['kind'],
      registers,
    }),
    commitSeconds: new Histogram({
      name: 'gateway_outbox_commit_seconds',
      help: 'Duration of one group commit (including fsync)',
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1],
      registers,
    }),
    walRestartSeconds: new Histogram({
      name: 'gateway_outbox_wal_restart_seconds',
      help: 'Time the event loop spent finishing a checkpoint so the outbox WAL starts over',
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1],
      registers,
    }),
    commitRows: new Histogram({
      name: 'gateway_outbox_commit_rows',
      help: 'Envelopes per group commit',
      buckets: [1, 2, 5, 10, 25, 50, 100, 250, 500],
      registers,
    }),
    pending: new Gauge({
      name: 'gateway_outbox_pending',
      help: 'Envelopes waiting in the outbox, by priority class',
      labelNames: ['class'],
      registers,
      collect: collectOutbox,
    }),
    callbackFailures: new Gauge({
      name: 'gateway_outbox_callback_failures',
      help: 'Outbox commit callbacks that threw since start (a bug: each is logged as GW_OUTBOX_CALLBACK_FAILED; the other callers of that commit were still answered)',
      registers,
    }),
    oldestPending: new Gauge({
      name: 'gateway_outbox_oldest_pending_seconds',
      help: 'Age of the oldest envelope waiting in the outbox, by priority class',
      labelNames: ['class'],
      registers,
    }),
    alerts: new Counter({
      name: 'gateway_alert_events_total',
      help: 'Alert events produced by the rules, by type and state',
      labelNames: ['type', 'state'],
      registers,
    }),
    suppressed: new Counter({
      name: 'gateway_alerts_suppressed_total',
      help: 'Would-be alerts held back by a rule (cooldown, low confidence), by rule',
      labelNames: ['rule'],
      registers,
    }),
    forwarded: new Counter({
      name: 'gateway_uplink_envelopes_forwarded_total',
      help: 'Envelopes the cloud acknowledged, by status',
      labelNames: ['status'],
      registers,
    }),
    uplinkRequests: new Counter({
      name: 'gateway_uplink_requests_total',
      help: 'Ingest requests to the cloud, by lane (urgent, bulk) and outcome',
      labelNames: ['lane', 'outcome'],
      registers,
    }),
    uplinkSeconds: new Histogram({
      name: 'gateway_uplink_request_seconds',
      help: 'Duration of one ingest request, by lane',
      labelNames: ['lane'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    }),
    uplinkCircuit: new Gauge({
      name: 'gateway_uplink_circuit_state',
      help: 'Uplink circuit breaker: 0 closed, 1 open, 2 half-open',
      registers,
    }),
    evicted: new Counter({
      name: 'gateway_outbox_rows_evicted_total',
      help: 'Rows dropped to stay within the disk quota or a TTL, by class and reason (each leaves gap records)',
      labelNames: ['class', 'reason'],
      registers,
    }),
    sizeBytes: new Gauge({
      name: 'gateway_outbox_size_bytes',
      help: 'Outbox size: used (live pages, what the quota limits) and file (database and WAL on disk)',
      labelNames: ['kind'],
      registers,
    }),
    uplinkUp: new Gauge({
      name: 'gateway_uplink_up',
      help: '1 when the last ingest request succeeded, 0 when the link is failing',
      registers,
    }),
  }
}

export type GatewayMetrics = ReturnType<typeof createGatewayMetrics>

export function withProcessMetrics(registry: Registry, prefix: string): void {
  collectDefaultMetrics({ register: registry, prefix })
}
