/**
 * Serves the web console (console/) at /console/.
 *
 * Production runs the bundle `npm run build` wrote next to dist/cloud-api.mjs (dist/console/).
 * From source (tsx: the demo, the tests) the console is built in memory at start with esbuild,
 * in well under a second, so there is no build step to forget and no stale copy to serve.
 * The console is static; everything it shows comes from the API with the signed-in user's token.
 */
import { readdir, readFile } from 'node:fs/promises'
import { extname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { FastifyInstance } from 'fastify'
import type { Logger } from '../../common/logger.ts'

type ConsoleFiles = Map<string, { body: Buffer; type: string }>

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.json': 'application/json',
  '.map': 'application/json',
}

/**
 * The console's own headers: scripts and connections only from this origin (the API), no
 * framing. uPlot sizes its canvas with inline styles, hence style-src 'unsafe-inline'.
 */
const SECURITY_HEADERS = {
  'content-security-policy': "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; media-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
}

async function prebuilt(dir: string): Promise<ConsoleFiles | undefined> {
  try {
    const files: ConsoleFiles = new Map()
    for (const name of await readdir(dir)) {
      files.set(name, { body: await readFile(join(dir, name)), type: TYPES[extname(name)] ?? 'application/octet-stream' })
    }
    return files.has('index.html') ? files : undefined
  } catch {
    return undefined
  }
}

async function loadConsole(log: Logger): Promise<ConsoleFiles | undefined> {
  const here = fileURLToPath(import.meta.url)
  if (here.endsWith('.mjs')) {
    // The production bundle: dist/cloud-api.mjs next to dist/console/.
    const files = await prebuilt(fileURLToPath(new URL('./console/', import.meta.url)))
    if (!files) log.warn({ code: 'CLOUD_CONSOLE_MISSING' }, 'no dist/console next to the bundle: run npm run build; the console is not served')
    return files
  }
  // From source. The specifier is a variable so that bundling cloud-api never pulls in the
  // console's build tooling (esbuild is a development dependency).
  const builder = '../../console/build.ts'
  const { buildConsole } = (await import(builder)) as { buildConsole: (o?: { minify?: boolean }) => Promise<ConsoleFiles> }
  const started = performance.now()
  const files = await buildConsole({ minify: false })
  log.debug({ ms: Math.round(performance.now() - started) }, 'console built in memory')
  return files
}

/** One build per process: tests start many API instances. */
let loaded: Promise<ConsoleFiles | undefined> | undefined

export async function registerConsole(app: FastifyInstance, log: Logger): Promise<void> {
  let files: ConsoleFiles | undefined
  try {
    loaded ??= loadConsole(log)
    files = await loaded
  } catch (err) {
    loaded = undefined
    // The API is still useful without its console; say so loudly and go on.
    log.error({ code: 'CLOUD_CONSOLE_BUILD_FAILED', err: (err as Error).message }, 'the console could not be built; it is not served')
  }
  if (!files) return
  const hidden = { schema: { hide: true } }
  app.get('/', hidden, (_req, reply) => reply.redirect('/console/'))
  app.get('/console', hidden, (_req, reply) => reply.redirect('/console/'))
  app.get<{ Params: { '*': string } }>('/console/*', hidden, (req, reply) => {
    const name = req.params['*'] === '' ? 'index.html' : req.params['*']
    const file = files.get(name)
    if (!file) return reply.code(404).send({ statusCode: 404, code: 'CLOUD_NOT_FOUND', error: 'Not Found', message: `no console file ${name}` })
    // index.html is revalidated so a new deployment is picked up; the assets are small.
    return reply.headers({ ...SECURITY_HEADERS, 'cache-control': 'no-cache' }).type(file.type).send(file.body)
  })
}
