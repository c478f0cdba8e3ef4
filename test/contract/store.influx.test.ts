import { InfluxStore } from '../../cloud-api/store/influx-store.ts'
import { describeWith, INFLUXD } from '../helpers/binaries.ts'
import { startInfluxd } from '../helpers/influxd.ts'
import { storeContract } from './store-contract.ts'

describeWith([INFLUXD])('InfluxDB store against a real influxd', () => {
  storeContract('InfluxDB 1.x HTTP API', async () => {
    const influxd = await startInfluxd()
    return {
      store: new InfluxStore({ url: influxd.url, database: 'gridwatch_contract' }),
      teardown: () => influxd.stop(),
    }
  })
})
