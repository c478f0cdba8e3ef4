/**
 * `tsx devices/camera/run.ts --url https://gateway:8443/ISAPI/Event/notification/alert --device cam-001 --password ... [--ca ca.crt] [--digest]`:
 * plays "an intrusion at night" against a running gateway's camera input and prints each answer.
 * For the demo and for trying a camera config before a real camera is wired.
 */
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { intrusionAtNight, IsapiCamera, TINY_JPEG } from './isapi-camera.ts'

const { values } = parseArgs({
  options: {
    url: { type: 'string' },
    device: { type: 'string' },
    password: { type: 'string', default: process.env.GRIDWATCH_CAMERA_PASSWORD },
    ca: { type: 'string' },
    digest: { type: 'boolean', default: false },
  },
})
if (!values.url || !values.device || !values.password) {
  console.error('usage: run.ts --url <alarm host URL> --device <camera id> --password <password> [--ca <PEM>] [--digest]')
  process.exit(2)
}
const camera = new IsapiCamera({
  url: values.url,
  deviceId: values.device,
  password: values.password,
  auth: values.digest ? 'digest' : 'basic',
  ...(values.ca ? { ca: readFileSync(values.ca) } : {}),
})
for (const result of await intrusionAtNight(camera, TINY_JPEG)) console.log(result.status, /<statusString>([^<]*)/.exec(result.body)?.[1] ?? result.body.slice(0, 120))
