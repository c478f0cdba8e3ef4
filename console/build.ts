/**
 * Builds the web console (console/src) into three files: index.html, app.js and app.css.
 *
 *   buildConsole()          in memory, for the API to serve at /console/ when no prebuilt console exists
 *   writeConsole(outdir)    to disk (npm run build → dist/console)
 *
 * One ES module bundle (preact and uPlot included) and one stylesheet (uPlot's CSS included).
 * This file must stay importable from the server side: it imports nothing from console/src.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { build } from 'esbuild'

export interface ConsoleFile {
  body: Buffer
  type: string
}

const root = dirname(fileURLToPath(import.meta.url))

const TYPES: Record<string, string> = {
  'index.html': 'text/html; charset=utf-8',
  'app.js': 'text/javascript; charset=utf-8',
  'app.css': 'text/css; charset=utf-8',
}

export async function buildConsole(options: { minify?: boolean } = {}): Promise<Map<string, ConsoleFile>> {
  const minify = options.minify ?? true
  const [result, html] = await Promise.all([
    build({
      absWorkingDir: root,
      entryPoints: { app: join(root, 'src', 'main.tsx') },
      outdir: join(root, 'out'),
      write: false,
      bundle: true,
      format: 'esm',
      target: 'es2020',
      platform: 'browser',
      jsx: 'automatic',
      jsxImportSource: 'preact',
      minify,
      legalComments: minify ? 'none' : 'inline',
      charset: 'utf8',
      define: { 'process.env.NODE_ENV': minify ? '"production"' : '"development"' },
      logLevel: 'silent',
    }),
    readFile(join(root, 'index.html')),
  ])
  const files = new Map<string, ConsoleFile>([['index.html', { body: html, type: TYPES['index.html'] }]])
  for (const out of result.outputFiles) {
    const name = out.path.slice(join(root, 'out').length + 1).replaceAll('\\', '/')
    files.set(name, { body: Buffer.from(out.contents), type: TYPES[name] ?? 'application/octet-stream' })
  }
  for (const name of ['app.js', 'app.css']) {
    if (!files.has(name)) throw new Error(`console build did not produce ${name}`)
  }
  return files
}

export async function writeConsole(outdir: string): Promise<void> {
  const files = await buildConsole({ minify: true })
  await mkdir(outdir, { recursive: true })
  await Promise.all([...files].map(([name, file]) => writeFile(join(outdir, name), file.body)))
}
