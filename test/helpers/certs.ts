/**
 * A throwaway PKI for TLS tests, made with the openssl CLI: an office CA, a server certificate
 * for 127.0.0.1/localhost, device certificates named by CN (and one by SAN only), and a
 * certificate from a CA the broker does not trust.
 */
import { execFileSync } from 'node:child_process'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export interface TestPki {
  dir: string
  ca: string
  serverCert: string
  serverKey: string
  client(name: string): { cert: string; key: string }
  /** Signed by a CA the broker does not know. */
  rogue: { cert: string; key: string }
}

export const OPENSSL = { name: 'openssl', debianPackage: 'openssl' }

function ssl(dir: string, args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' })
}

function makeCa(dir: string, name: string): void {
  ssl(dir, ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', `/CN=${name}`, '-keyout', `${name}.key`, '-out', `${name}.crt`])
}

function issue(dir: string, ca: string, name: string, subject: string, san: string | undefined): void {
  ssl(dir, ['req', '-newkey', 'rsa:2048', '-nodes', '-subj', subject, '-keyout', `${name}.key`, '-out', `${name}.csr`])
  const ext = join(dir, `${name}.ext`)
  writeFileSync(ext, san ? `subjectAltName=${san}\n` : 'basicConstraints=CA:FALSE\n')
  ssl(dir, ['x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.crt`, '-CAkey', `${ca}.key`, '-CAcreateserial', '-days', '2', '-out', `${name}.crt`, '-extfile', ext])
}

export function makeTestPki(clients: { name: string; subject?: string; san?: string }[]): TestPki {
  const dir = mkdtempSync(join(tmpdir(), 'gw-pki-'))
  makeCa(dir, 'office-ca')
  makeCa(dir, 'rogue-ca')
  issue(dir, 'office-ca', 'server', '/CN=localhost', 'DNS:localhost,IP:127.0.0.1')
  for (const c of clients) issue(dir, 'office-ca', c.name, c.subject ?? `/CN=${c.name}`, c.san)
  issue(dir, 'rogue-ca', 'rogue', '/CN=gas-001', undefined)
  const at = (f: string) => join(dir, f)
  return {
    dir,
    ca: at('office-ca.crt'),
    serverCert: at('server.crt'),
    serverKey: at('server.key'),
    client: (name) => ({ cert: at(`${name}.crt`), key: at(`${name}.key`) }),
    rogue: { cert: at('rogue.crt'), key: at('rogue.key') },
  }
}
