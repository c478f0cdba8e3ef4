/** Gateway health per office: link, last seen, backlog, version. */
import { api } from './api.ts'
import { agoSeconds, formatDateTime, linkLabel, useT } from './i18n.ts'
import type { Gateway } from './types.ts'
import { Empty, ErrorBox, Icon, Loading, useLoad, type IconName } from './ui.tsx'

const LINK_ICON: Record<string, IconName> = { up: 'check', down: 'x', never_seen: 'circle' }

export function Gateways() {
  const t = useT()
  const loaded = useLoad((signal) => api<{ gateways: Gateway[] }>('GET', '/v1/gateways', undefined, { signal }), [], 15_000)
  const gateways = loaded.data?.gateways
  return (
    <section class="view gateways-view" aria-labelledby="gateways-title">
      <div class="view-head">
        <h1 id="gateways-title" tabIndex={-1}>
          {t('gateways')}
        </h1>
        <button type="button" class="button ghost" onClick={loaded.reload} disabled={loaded.loading}>
          <Icon name="refresh" />
          {t('refresh')}
        </button>
      </div>
      {loaded.error ? <ErrorBox error={loaded.error} retry={loaded.reload} /> : null}
      {!gateways && !loaded.error ? <Loading /> : null}
      {gateways && gateways.length === 0 ? <Empty>{t('noGateways')}</Empty> : null}
      {gateways && gateways.length > 0 ? (
        <table class="table gateways" data-testid="gateways">
          <thead>
            <tr>
              <th scope="col">{t('gateway')}</th>
              <th scope="col">{t('office')}</th>
              <th scope="col">{t('link')}</th>
              <th scope="col">{t('lastSeen')}</th>
              <th scope="col">{t('backlog')}</th>
              <th scope="col">{t('version')}</th>
            </tr>
          </thead>
          <tbody>
            {gateways.map((g) => (
              <tr key={g.id} class={`link-row link-${g.link}`} data-testid="gateway-row" data-gateway={g.id} data-link={g.link}>
                <th scope="row" data-label={t('gateway')}>
                  <span>{g.id}</span>
                </th>
                <td data-label={t('office')}>
                  <span>
                    {g.officeName ?? g.office}
                    {g.officeName ? <span class="muted"> {g.office}</span> : null}
                  </span>
                </td>
                <td data-label={t('link')}>
                  <span>
                  <span class={`badge link-badge link-badge-${g.link}`}>
                    <Icon name={LINK_ICON[g.link] ?? 'circle'} />
                    {linkLabel(g.link)}
                  </span>
                  </span>
                </td>
                <td data-label={t('lastSeen')}>
                  {g.lastSeen ? (
                    <span>
                      <time dateTime={g.lastSeen}>{formatDateTime(g.lastSeen)}</time>
                      {g.secondsSinceSeen !== undefined ? <span class="muted"> ({agoSeconds(g.secondsSinceSeen)})</span> : null}
                    </span>
                  ) : (
                    <span>{t('never')}</span>
                  )}
                </td>
                <td data-label={t('backlog')} class="num">
                  <span>{g.backlog ?? t('none')}</span>
                </td>
                <td data-label={t('version')}>
                  <span>{g.version ?? t('none')}</span>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
    </section>
  )
}
