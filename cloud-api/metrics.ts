/** Every cloud-api metric in one place. */
import { Counter, Gauge, Histogram, Registry } from 'prom-client'

export function createCloudMetrics(registry = new Registry()) {
  const registers = [registry]
  let center: () => { auditPending: number } = () => ({ auditPending: 0 })
  return {
    registry,
    /** The center's own state, read when scraped. */
    trackCenter(read: typeof center) {
      center = read
    },
    auditPending: new Gauge({
      name: 'cloud_audit_pending',
      help: 'Lifecycle transitions not yet copied to the event store (it was down)',
      registers,
      collect() {
        this.set(center().auditPending)
      },
    }),
    transitions: new Counter({
      name: 'cloud_lifecycle_transitions_total',
      help: 'Alert and incident lifecycle transitions, by kind and action',
      labelNames: ['kind', 'action'],
      registers,
    }),
    authFailures: new Counter({
      name: 'cloud_auth_failures_total',
      help: 'Requests refused for authentication (401) or authorization (403), by route',
      labelNames: ['route', 'status'],
      registers,
    }),
    shed: new Counter({
      name: 'cloud_requests_shed_total',
      help: 'Requests refused with 503 because the API was under pressure (event loop or heap)',
      labelNames: ['route'],
      registers,
    }),
    rateLimited: new Counter({
      name: 'cloud_rate_limited_total',
      help: 'Requests refused with 429, by route',
      labelNames: ['route'],
      registers,
    }),
    httpRequests: new Counter({
      name: 'cloud_http_requests_total',
      help: 'HTTP requests, by route and status code',
      labelNames: ['route', 'status'],
      registers,
    }),
    httpSeconds: new Histogram({
      name: 'cloud_http_request_seconds',
      help: 'HTTP request duration, by route',
      labelNames: ['route'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    }),
    ingested: new Counter({
      name: 'cloud_ingest_envelopes_total',
      help: 'Envelopes ingested, by kind and status (stored, duplicate)',
      labelNames: ['kind', 'status'],
      registers,
    }),
    ingestRejected: new Counter({
      name: 'cloud_ingest_rejected_total',
      help: 'Ingest requests refused, by error code',
      labelNames: ['code'],
      registers,
    }),
    storeSeconds: new Histogram({
      name: 'cloud_store_write_seconds',
      help: 'Duration of one batch write to the event store, including the turns a large batch gives other requests between its slices',
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    }),
    casebookSeconds: new Histogram({
      name: 'cloud_casebook_apply_seconds',
      help: "Opening or moving the cases of one ingest batch, their commit (fsync included) and their announcement on the live stream: an alert's last step before the consoles see it",
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    }),
    streamClients: new Counter({
      name: 'cloud_stream_clients_total',
      help: 'Live stream connections opened, and closed for being too slow',
      labelNames: ['event'],
      registers,
    }),
  }
}

export type CloudMetrics = ReturnType<typeof createCloudMetrics>
