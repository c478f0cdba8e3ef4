/**
 * The OPC UA input: one subscription per configured plant server (`inputs.opcua`), its values
 * turned into readings and sensor faults for the pipeline. docs/inputs/opcua.md describes the
 * config, security, reconnection and what this input is not.
 *
 * node-opcua is loaded when the input starts, not when the gateway loads: an office without
 * OPC UA servers does not pay its second of start-up.
 */
import { join } from 'node:path'
import { InputMetrics, type Input, type InputContext, type InputHealth } from '../input.ts'
import { resolveOpcuaServer, type OpcuaServerSettings } from './config.ts'
import type { ServerLink } from './server-link.ts'

export const INPUT = 'opcua'

export function createOpcuaInputs(ctx: InputContext): Input[] {
  // The config, references to /devices included, was checked when it loaded (load.ts).
  if (ctx.config.inputs.opcua.length === 0) return []
  return [new OpcuaInput(ctx, ctx.config.inputs.opcua.map(resolveOpcuaServer))]
}

export class OpcuaInput implements Input {
  readonly name = INPUT
  private links: ServerLink[] = []
  private dispose: (() => Promise<void>) | undefined

  constructor(
    private readonly ctx: InputContext,
    readonly servers: readonly OpcuaServerSettings[],
  ) {}

  /** Directory of the gateway's OPC UA PKI: own/ (its certificate), trusted/, rejected/, issuers/. */
  get pkiDir(): string {
    return join(this.ctx.dataDir, 'pki', 'opcua')
  }

  async start(): Promise<void> {
    const [{ OPCUACertificateManager }, { ServerLink }] = await Promise.all([import('node-opcua'), import('./server-link.ts')])
    // One application instance certificate for every server (OPC UA Part 4, 6.1): the gateway is
    // one OPC UA application. A server's certificate is trusted once an operator moves it from
    // rejected/ to trusted/, never automatically.
    const certificateManager = new OPCUACertificateManager({ rootFolder: this.pkiDir, automaticallyAcceptUnknownCertificate: false })
    await certificateManager.initialize()
    this.dispose = () => {
      // Every OPCUAClient takes a reference on the manager (node-opcua-client 2.182.2,
      // client_base_impl.js: referenceCounter++) and gives it back in disconnect(), except a
      // client whose connect failed for good: it is already 'disconnected', so disconnect()
      // returns early and the reference leaks, one per refused attempt. dispose() only decrements
      // while references remain, so it would never close the manager's trusted/ and rejected/
      // watchers. Every link is stopped and every client closed by now: drop what leaked.
      certificateManager.referenceCounter = 0
      return certificateManager.dispose()
    }
    const metrics = new InputMetrics(this.ctx.metrics, INPUT)
    const thresholds = this.ctx.config.thresholds
    this.links = this.servers.map(
      (settings) =>
        new ServerLink(settings, {
          input: INPUT,
          pipeline: this.ctx.pipeline,
          logger: this.ctx.logger,
          metrics,
          certificateManager,
          applicationUri: `urn:gridwatch:gateway:${this.ctx.config.gateway.id}`,
          unitOf: (quantity) => thresholds[quantity]?.unit,
        }),
    )
    // Each server connects in the background: one unreachable plant must not hold the gateway's start.
    for (const link of this.links) link.start()
  }

  async stop(): Promise<void> {
    await Promise.all(this.links.map((l) => l.stop()))
    await this.dispose?.()
    this.dispose = undefined
  }

  health(): InputHealth {
    const down = this.servers.filter((s) => !this.link(s.name)?.up).map((s) => s.name)
    const invalid = this.links.reduce((n, l) => n + l.invalidItemCount, 0)
    const notes: string[] = []
    if (down.length > 0) notes.push(`no session with ${down.join(', ')}`)
    if (invalid > 0) notes.push(`${invalid} configured node(s) refused by their server`)
    return notes.length > 0 ? { ok: down.length === 0, detail: notes.join('; ') } : { ok: true }
  }

  /** The link to one server, for tests and the health endpoint's detail. */
  link(name: string): ServerLink | undefined {
    return this.links.find((l) => l.name === name)
  }
}
