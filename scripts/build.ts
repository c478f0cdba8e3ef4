/**
 * `npm run build`: one self-contained ES module per deployable in dist/, bundled with esbuild.
 *
 * Why bundle a server: loading typebox, fastify and aedes as hundreds of separate ES modules costs
 * a gateway ~26 MB of resident memory before it has done anything (96 MB idle against 70 MB
 * bundled, measured here); on a street-office box with a memory budget that matters. The native
 * addon (better-sqlite3) stays external and loads from node_modules.
 */
import { cpSync, mkdirSync, readdirSync, rmSync } from 'node:fs'
import { basename, join } from 'node:path'
import { build } from 'esbuild'

const entries = {
  gateway: 'gateway/main.ts',
  'cloud-api': 'cloud-api/main.ts',
  broker: 'broker/main.ts',
  'mqtt-load': 'devices/load/mqtt-load.ts',
}

mkdirSync('dist', { recursive: true })
const built = await build({
  entryPoints: entries,
  outdir: 'dist',
  outExtension: { '.js': '.mjs' },
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'esm',
  // A dynamic import() becomes its own chunk, so a field input's module (and its protocol library)
  // is read only by a gateway that configures it.
  splitting: true,
  sourcemap: true,
  // swagger-ui serves its static files from its own package directory. serialport carries a native
  // addon, and node-opcua reads its nodesets and certificates relative to its own packages; all of
  // them load from node_modules, and only in a gateway whose office configures them.
  external: ['better-sqlite3', '@fastify/swagger-ui', 'serialport', '@serialport/*', 'modbus-serial', 'node-opcua', 'node-opcua-*'],
  // CommonJS dependencies inside an ES module bundle still call require().
  banner: { js: "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);" },
  logLevel: 'warning',
  metafile: true,
})
// Code splitting names chunks by content hash, so each build used to leave the last one's chunks
// behind (141 files after a day's work). They are removed after the build, not before it: a
// gateway restarting from dist/ during a build still finds a complete set.
const outputs = new Set(Object.keys(built.metafile.outputs).map((p) => basename(p)))
for (const file of readdirSync('dist')) if (/\.mjs(\.map)?$/.test(file) && !outputs.has(file)) rmSync(join('dist', file))
// The demo office config is found next to the module that loads it (gateway/config/load.ts).
cpSync('gateway/config/demo-office.yaml', 'dist/demo-office.yaml')
// The web console, served by dist/cloud-api.mjs from dist/console/.
const { writeConsole } = await import('../console/build.ts')
await writeConsole('dist/console')
console.log(`built ${Object.keys(entries).map((e) => `dist/${e}.mjs`).join(', ')}, dist/console/`)
