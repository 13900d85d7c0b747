// A local API server that speaks the real list/watch protocol for custom resources: lists with
// metadata.resourceVersion, watches as chunked JSON lines from a resourceVersion (history replayed),
// 410 Gone as an ERROR event for a compacted resourceVersion, the status subresource with merge
// patches (generation moves only with spec), discovery of API groups, and TokenReview. Core
// resources (namespaces, configmaps, pods, services) too: list/watch (fieldSelector metadata.name), get, create
// (409 when present), replace (409 on a stale resourceVersion), delete.
import http from 'node:http'
import { randomUUID } from 'node:crypto'
import type { AddressInfo } from 'node:net'

type Obj = Record<string, any>
interface Event {
  rv: number
  type: 'ADDED' | 'MODIFIED' | 'DELETED'
  coll: string
  object: Obj
}
interface Watcher {
  coll: string
  res: http.ServerResponse
  paused: boolean
  name?: string
}
const CORE_KINDS: Record<string, string> = { namespaces: 'Namespace', configmaps: 'ConfigMap', pods: 'Pod', services: 'Service' }
type CorePlural = 'namespaces' | 'configmaps' | 'pods' | 'services'

const KINDS: Record<string, string> = { authorizationpolicies: 'AuthorizationPolicy', requestauthentications: 'RequestAuthentication', peerauthentications: 'PeerAuthentication', endpointslices: 'EndpointSlice' }

export interface FakeKubeApi {
  readonly url: string
  /** Create or update (spec change → generation + 1), as `kubectl apply` would. */
  apply(group: string, obj: Obj): Obj
  delete(group: string, kind: string, namespace: string, name: string): void
  get(group: string, plural: string, namespace: string, name: string): Obj | undefined
  /** Served API groups (security.remora.dev/v1 always). */
  serveGroup(groupVersion: string): void
  /** Open watches stop receiving events (a stalled connection), while changes go on. */
  pauseWatches(): void
  /** Forget history up to now: a watch from an older resourceVersion gets 410. */
  compact(): void
  /** Every open watch gets ERROR 410 Expired and ends, as after an etcd compaction. */
  expireWatches(): void
  /** Every open watch ends cleanly (the server's watch timeout). */
  endWatches(): void
  readonly watchRequests: string[]
  /** The Authorization header of every request (tests of credentials). */
  readonly authorizations: (string | undefined)[]
  readonly statusPatches: { path: string; body: Obj }[]
  /** Core v1 objects (namespaces: namespace ''), as a controller or kubectl would change them. */
  putCore(plural: CorePlural, obj: Obj): Obj
  deleteCore(plural: CorePlural, namespace: string, name: string): void
  getCore(plural: CorePlural, namespace: string, name: string): Obj | undefined
  /** Writes (POST/PUT/DELETE) to core resources, in order: "POST /api/v1/namespaces/shop/configmaps". */
  readonly coreWrites: string[]
  tokens: Map<string, { username: string; audiences: string[]; pod?: string }>
  close(): Promise<void>
}

export async function startFakeKubeApi(): Promise<FakeKubeApi> {
  let rv = 100
  let compactedAt = 0
  const store = new Map<string, Map<string, Obj>>() // "group/plural" → "ns/name" → object
  const history: Event[] = []
  const watchers = new Set<Watcher>()
  const groups = new Set(['security.remora.dev/v1', 'discovery.k8s.io/v1'])
  const watchRequests: string[] = []
  const authorizations: (string | undefined)[] = []
  const statusPatches: { path: string; body: Obj }[] = []
  const tokens = new Map<string, { username: string; audiences: string[]; pod?: string }>()

  const coll = (group: string, plural: string) => {
    const k = `${group}/${plural}`
    if (!store.has(k)) store.set(k, new Map())
    return store.get(k)!
  }
  const line = (type: string, object: Obj) => `${JSON.stringify({ type, object })}\n`
  const emit = (e: Event) => {
    history.push(e)
    for (const w of watchers) if (w.coll === e.coll && !w.paused && (w.name === undefined || w.name === e.object.metadata?.name)) w.res.write(line(e.type, e.object))
  }
  const send = (res: http.ServerResponse, status: number, body: unknown) => {
    const t = JSON.stringify(body)
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(t) })
    res.end(t)
  }
  const statusObj = (code: number, reason: string, message: string) => ({ kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code })
  const pluralOf = (kind: string) => Object.entries(KINDS).find(([, k]) => k === kind)![0]

  const coreWrites: string[] = []
  const putCore = (plural: string, obj: Obj): Obj => {
    const objs = coll('v1', plural)
    const k = `${obj.metadata.namespace ?? ''}/${obj.metadata.name}`
    const cur = objs.get(k)
    const next = { apiVersion: 'v1', kind: CORE_KINDS[plural], ...obj, metadata: { ...obj.metadata, uid: cur?.metadata.uid ?? randomUUID(), resourceVersion: String(++rv) } }
    objs.set(k, next)
    emit({ rv, type: cur ? 'MODIFIED' : 'ADDED', coll: `v1/${plural}`, object: next })
    return next
  }
  const deleteCore = (plural: string, ns: string, name: string): boolean => {
    const objs = coll('v1', plural)
    const cur = objs.get(`${ns}/${name}`)
    if (!cur) return false
    objs.delete(`${ns}/${name}`)
    emit({ rv: ++rv, type: 'DELETED', coll: `v1/${plural}`, object: { ...cur, metadata: { ...cur.metadata, resourceVersion: String(rv) } } })
    return true
  }
  // /api/v1/<plural> (all namespaces), /api/v1/namespaces[/<name>], /api/v1/namespaces/<ns>/<plural>[/<name>]
  const core = (req: http.IncomingMessage, res: http.ServerResponse, url: URL, rest: string[], body: Obj | null): void => {
    const m = req.method ?? 'GET'
    let plural: string
    let ns: string | null = null
    let name: string | null = null
    if (rest[0] === 'namespaces' && rest.length >= 3) [ns, plural, name] = [rest[1]!, rest[2]!, rest[3] ?? null]
    else [plural, name] = [rest[0]!, rest[1] ?? null]
    if (!CORE_KINDS[plural]) return send(res, 404, statusObj(404, 'NotFound', 'the server could not find the requested resource'))
    const c = `v1/${plural}`
    const objs = coll('v1', plural)
    const key = (n: string) => `${plural === 'namespaces' ? '' : (ns ?? '')}/${n}`
    if (m !== 'GET') coreWrites.push(`${m} ${url.pathname}`)
    if (name === null && m === 'GET') {
      const fs = /^metadata\.name=(.+)$/.exec(url.searchParams.get('fieldSelector') ?? '')?.[1]
      const match = (o: Obj) => (fs === undefined || o.metadata.name === fs) && (ns === null || o.metadata.namespace === ns)
      if (url.searchParams.get('watch') === '1' || url.searchParams.get('watch') === 'true') {
        watchRequests.push(req.url!)
        const from = Number(url.searchParams.get('resourceVersion') ?? '0')
        res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' })
        if (from < compactedAt) {
          res.write(line('ERROR', statusObj(410, 'Expired', `too old resource version: ${from} (${compactedAt})`)))
          return void res.end()
        }
        for (const e of history) if (e.coll === c && e.rv > from && match(e.object)) res.write(line(e.type, e.object))
        const w: Watcher = { coll: c, res, paused: false, ...(fs !== undefined ? { name: fs } : {}) }
        watchers.add(w)
        res.on('close', () => watchers.delete(w))
        return
      }
      const items = [...objs.values()].filter(match).map(({ apiVersion: _a, kind: _k, ...r }) => r)
      return send(res, 200, { apiVersion: 'v1', kind: `${CORE_KINDS[plural]}List`, metadata: { resourceVersion: String(rv) }, items })
    }
    if (name === null && m === 'POST') {
      if (objs.has(key(body!.metadata.name))) return send(res, 409, statusObj(409, 'AlreadyExists', `${plural} "${body!.metadata.name}" already exists`))
      return send(res, 201, putCore(plural, { ...body!, metadata: { ...body!.metadata, ...(ns ? { namespace: ns } : {}) } }))
    }
    if (name === null) return send(res, 405, statusObj(405, 'MethodNotAllowed', 'method not allowed'))
    const cur = objs.get(key(name))
    if (m === 'GET') return cur ? send(res, 200, cur) : send(res, 404, statusObj(404, 'NotFound', `${plural} "${name}" not found`))
    if (m === 'PUT') {
      if (!cur) return send(res, 404, statusObj(404, 'NotFound', `${plural} "${name}" not found`))
      if (body!.metadata?.resourceVersion && body!.metadata.resourceVersion !== cur.metadata.resourceVersion) return send(res, 409, statusObj(409, 'Conflict', 'the object has been modified'))
      return send(res, 200, putCore(plural, { ...body!, metadata: { ...body!.metadata, ...(ns ? { namespace: ns } : {}) } }))
    }
    if (m === 'DELETE') return deleteCore(plural, ns ?? '', name) ? send(res, 200, statusObj(200, 'Success', 'deleted')) : send(res, 404, statusObj(404, 'NotFound', 'not found'))
    send(res, 405, statusObj(405, 'MethodNotAllowed', 'method not allowed'))
  }

  const server = http.createServer((req, res) => {
    const url = new URL(req.url!, 'http://x')
    authorizations.push(req.headers.authorization)
    const parts = url.pathname.split('/').filter(Boolean) // apis, group, version, [namespaces, ns], plural, [name, status]
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const body = chunks.length ? (JSON.parse(Buffer.concat(chunks).toString('utf8')) as Obj) : null
      if (parts[0] === 'api' && parts[1] === 'v1') return core(req, res, url, parts.slice(2), body)
      if (parts[0] !== 'apis') return send(res, 404, statusObj(404, 'NotFound', 'not found'))
      const gv = `${parts[1]}/${parts[2]}`
      if (gv === 'authentication.k8s.io/v1' && parts[3] === 'tokenreviews' && req.method === 'POST') {
        const t = tokens.get(body!.spec.token)
        const aud: string[] = body!.spec.audiences ?? []
        const ok = t !== undefined && aud.every((a) => t.audiences.includes(a))
        return send(res, 201, {
          kind: 'TokenReview',
          apiVersion: 'authentication.k8s.io/v1',
          metadata: { creationTimestamp: null },
          spec: body!.spec,
          status: ok
            ? { authenticated: true, user: { username: t.username, uid: randomUUID(), groups: ['system:serviceaccounts', 'system:authenticated'], extra: t.pod ? { 'authentication.kubernetes.io/pod-name': [t.pod] } : {} }, audiences: aud }
            : { user: {}, error: '[invalid bearer token, service account token has been invalidated]' },
        })
      }
      if (!groups.has(gv)) return send(res, 404, statusObj(404, 'NotFound', 'the server could not find the requested resource'))
      if (parts.length === 3) return send(res, 200, { kind: 'APIResourceList', apiVersion: 'v1', groupVersion: gv, resources: Object.entries(KINDS).map(([name, kind]) => ({ name, kind, namespaced: true, verbs: ['get', 'list', 'watch'] })) })
      // Cluster-wide list / watch: /apis/g/v/plural
      if (parts.length === 4 && req.method === 'GET') {
        const c = `${gv}/${parts[3]}`
        const kind = KINDS[parts[3]!]!
        if (url.searchParams.get('watch') === '1' || url.searchParams.get('watch') === 'true') {
          watchRequests.push(req.url!)
          const from = Number(url.searchParams.get('resourceVersion') ?? '0')
          res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' })
          if (from < compactedAt) {
            res.write(line('ERROR', statusObj(410, 'Expired', `too old resource version: ${from} (${compactedAt})`)))
            return res.end()
          }
          for (const e of history) if (e.coll === c && e.rv > from) res.write(line(e.type, e.object))
          const w: Watcher = { coll: c, res, paused: false }
          watchers.add(w)
          res.on('close', () => watchers.delete(w))
          return
        }
        const items = [...coll(gv, parts[3]!).values()].map(({ apiVersion: _a, kind: _k, ...rest }) => rest)
        return send(res, 200, { apiVersion: gv, kind: `${kind}List`, metadata: { resourceVersion: String(rv) }, items })
      }
      // Status subresource: /apis/g/v/namespaces/ns/plural/name/status
      if (parts.length === 8 && parts[3] === 'namespaces' && parts[7] === 'status' && req.method === 'PATCH') {
        if (req.headers['content-type'] !== 'application/merge-patch+json') return send(res, 415, statusObj(415, 'UnsupportedMediaType', 'expected a merge patch'))
        const objs = coll(gv, parts[5]!)
        const cur = objs.get(`${parts[4]}/${parts[6]}`)
        if (!cur) return send(res, 404, statusObj(404, 'NotFound', 'not found'))
        statusPatches.push({ path: url.pathname, body: body! })
        const next = { ...cur, status: body!.status, metadata: { ...cur.metadata, resourceVersion: String(++rv) } }
        objs.set(`${parts[4]}/${parts[6]}`, next)
        emit({ rv, type: 'MODIFIED', coll: `${gv}/${parts[5]}`, object: next })
        return send(res, 200, next)
      }
      send(res, 404, statusObj(404, 'NotFound', 'not found'))
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`

  return {
    url,
    watchRequests,
    authorizations,
    statusPatches,
    tokens,
    coreWrites,
    putCore,
    deleteCore: (plural, ns, name) => void deleteCore(plural, ns, name),
    getCore: (plural, ns, name) => coll('v1', plural).get(`${plural === 'namespaces' ? '' : ns}/${name}`),
    apply(group, obj) {
      const plural = pluralOf(obj.kind)
      const objs = coll(group, plural)
      const k = `${obj.metadata.namespace}/${obj.metadata.name}`
      const cur = objs.get(k)
      const specChanged = !cur || JSON.stringify(cur.spec) !== JSON.stringify(obj.spec)
      const next = {
        apiVersion: group,
        kind: obj.kind,
        ...obj,
        metadata: {
          ...obj.metadata,
          uid: cur?.metadata.uid ?? randomUUID(),
          resourceVersion: String(++rv),
          generation: (cur?.metadata.generation ?? 0) + (specChanged ? 1 : 0),
          creationTimestamp: cur?.metadata.creationTimestamp ?? '2024-05-01T10:00:00Z',
          managedFields: [{ manager: 'kubectl-client-side-apply', operation: 'Update', apiVersion: group, time: '2024-05-01T10:00:00Z', fieldsType: 'FieldsV1', fieldsV1: {} }],
        },
        ...(cur?.status ? { status: cur.status } : {}),
      }
      objs.set(k, next)
      emit({ rv, type: cur ? 'MODIFIED' : 'ADDED', coll: `${group}/${plural}`, object: next })
      return next
    },
    delete(group, kind, namespace, name) {
      const plural = pluralOf(kind)
      const objs = coll(group, plural)
      const cur = objs.get(`${namespace}/${name}`)
      if (!cur) return
      objs.delete(`${namespace}/${name}`)
      emit({ rv: ++rv, type: 'DELETED', coll: `${group}/${plural}`, object: { ...cur, metadata: { ...cur.metadata, resourceVersion: String(rv) } } })
    },
    get: (group, plural, namespace, name) => coll(group, plural).get(`${namespace}/${name}`),
    serveGroup: (g) => void groups.add(g),
    pauseWatches() {
      for (const w of watchers) w.paused = true
    },
    compact() {
      compactedAt = rv
      history.length = 0
    },
    expireWatches() {
      for (const w of watchers) {
        w.res.write(line('ERROR', statusObj(410, 'Expired', `too old resource version (${compactedAt})`)))
        w.res.end()
      }
      watchers.clear()
    },
    endWatches() {
      for (const w of watchers) w.res.end()
      watchers.clear()
    },
    async close() {
      for (const w of watchers) w.res.destroy()
      server.closeAllConnections()
      await new Promise((r) => server.close(r))
    },
  }
}
