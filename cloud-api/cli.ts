/**
 * `npm run cloud -- <command>`: managing people, tokens and gateways in the center database,
 * offline or while the API runs (SQLite WAL lets both use the file).
 *
 *   user add <name> --role admin|center|inspector|supervisor [--district D] [--offices a,b] [--enterprises x,y] [--password-stdin]
 *   user list | user remove <name> | user password <name> [--password-stdin]
 *   user token <name> --label L [--ttl-hours N]
 *   gateway add <id> --office O | gateway list | gateway remove <id> | gateway rotate <id>
 *   token list | token revoke <id>
 *
 * Every command takes --config like the server. Passwords are read from stdin with
 * --password-stdin (so they stay out of shell history and `ps`), or generated and printed once.
 * Tokens are printed once; only their hashes are kept.
 */
import { readFileSync } from 'node:fs'
import { Directory, suggestPassword } from './access/directory.ts'
import { Organization } from './access/organization.ts'
import { Roles, type Role } from './access/principal.ts'
import { openCenterDb } from './center/db.ts'
import type { CloudConfig } from './config.ts'
import { CodedError } from '../common/errors.ts'

export class UsageError extends Error {}

const USAGE = `usage: npm run cloud -- [--config FILE] <command>
  user add NAME --role admin|center|inspector|supervisor [--district D] [--offices a,b] [--enterprises x,y] [--password-stdin]
  user list | user remove NAME | user password NAME [--password-stdin]
  user token NAME --label LABEL [--ttl-hours N]
  gateway add ID --office OFFICE | gateway list | gateway remove ID | gateway rotate ID
  token list | token revoke ID`

function flag(argv: readonly string[], name: string): string | undefined {
  const i = argv.indexOf(name)
  return i >= 0 ? argv[i + 1] : undefined
}

function list(text: string | undefined): string[] | undefined {
  return text === undefined ? undefined : text.split(',').map((s) => s.trim()).filter(Boolean)
}

/** Runs one CLI command; returns what to print. */
export async function runCli(argv: readonly string[], config: CloudConfig, readStdin: () => string = () => readFileSync(0, 'utf8')): Promise<string> {
  const [noun, verb, target] = argv
  const db = openCenterDb(config.center.path)
  const directory = new Directory(db, config, new Organization(config.organization))
  const password = () => (argv.includes('--password-stdin') ? readStdin().replace(/\r?\n$/, '') : undefined)
  try {
    const need = (what: string) => {
      if (!target) throw new UsageError(`${noun} ${verb} needs ${what}\n${USAGE}`)
      return target
    }
    switch (`${noun} ${verb}`) {
      case 'user add': {
        const role = flag(argv, '--role') as Role | undefined
        if (!role || !Roles.includes(role)) throw new UsageError(`--role must be one of ${Roles.join(', ')}\n${USAGE}`)
        const given = password()
        const chosen = given ?? suggestPassword()
        const user = await directory.addUser(need('a name'), role, { district: flag(argv, '--district'), offices: list(flag(argv, '--offices')), enterprises: list(flag(argv, '--enterprises')) }, chosen)
        return `added ${user.name} (${user.role})${given === undefined ? `\npassword: ${chosen}   (shown once)` : ''}`
      }
      case 'user list':
        return directory
          .users()
          .map((u) => `${u.name}\t${u.role}\t${JSON.stringify(u.scope)}\t${u.source}${u.hasPassword ? '' : '\t(no password)'}`)
          .join('\n')
      case 'user remove':
        directory.removeUser(need('a name'))
        return `removed ${target}`
      case 'user password': {
        const given = password()
        const chosen = given ?? suggestPassword()
        await directory.setPassword(need('a name'), chosen)
        return `password set for ${target}${given === undefined ? `\npassword: ${chosen}   (shown once)` : ''}`
      }
      case 'user token': {
        const label = flag(argv, '--label')
        if (!label) throw new UsageError(`user token needs --label\n${USAGE}`)
        const ttl = flag(argv, '--ttl-hours')
        if (ttl !== undefined && !/^[0-9]+(\.[0-9]+)?$/.test(ttl)) throw new UsageError(`--ttl-hours must be a number of hours, not "${ttl}"`)
        const made = directory.createUserToken(need('a name'), label, ttl === undefined ? undefined : Number(ttl))
        return `token ${made.id} for ${target}\ntoken: ${made.token}   (shown once)`
      }
      case 'gateway add': {
        const office = flag(argv, '--office')
        if (!office) throw new UsageError(`gateway add needs --office\n${USAGE}`)
        const made = directory.addGateway(need('an id'), office)
        return `gateway ${target} for office ${office}\ntoken: ${made.token}   (shown once; put it in the gateway's uplink config)`
      }
      case 'gateway list':
        return directory
          .gateways()
          .map((g) => `${g.id}\t${g.office}\t${g.source}`)
          .join('\n')
      case 'gateway remove':
        directory.removeGateway(need('an id'))
        return `removed gateway ${target}`
      case 'gateway rotate':
        return `new token for ${need('an id')}: ${directory.rotateGatewayToken(target).token}   (shown once; the old one no longer works)`
      case 'token list':
        return directory
          .tokens()
          .map((t) => `${t.id}\t${t.ownerKind}:${t.owner}\t${t.kind}\t${t.label ?? ''}\t${t.expiresAt ?? 'no expiry'}`)
          .join('\n')
      case 'token revoke':
        directory.revokeToken(need('an id'))
        return `revoked ${target}`
      default:
        throw new UsageError(USAGE)
    }
  } catch (err) {
    if (err instanceof CodedError && !(err instanceof UsageError)) throw new UsageError(err.message)
    throw err
  } finally {
    db.close()
  }
}

export const CLI_NOUNS = ['user', 'gateway', 'token']
