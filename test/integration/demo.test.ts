import { expect, test } from 'vitest'
import { runRemora } from '../helpers/process.js'

test('remora demo --once: control plane + join tokens + remora apply; allowed chain, denied call with its reason, plaintext refused, a live policy change; exit 0', async () => {
  const child = runRemora(['demo', '--once'])
  const code = await child.exited
  expect(child.stderr).toBe('')
  expect(code).toBe(0)
  expect(child.stdout).toContain('✔ you → frontend → orders → payments: HTTP 200')
  // JWT: a buyer token reached orders above; without the group 403, tampered 401; tokens stay in files
  expect(child.stdout).toContain('✔ you (a valid token, not in "buyers") → frontend → orders: HTTP 403')
  expect(child.stdout).toContain('✔ you (a tampered token) → frontend → orders: HTTP 401')
  expect(child.stdout).not.toMatch(/Bearer ey/)
  expect(child.stdout).toContain('payments saw caller spiffe://cluster.local/ns/shop/sa/orders')
  expect(child.stdout).toMatch(/HTTP 403[\s\S]*RBAC: access denied[\s\S]*x-remora-denied-by: deny: no ALLOW policy matched/)
  // On the control plane: join-token bootstrap, the allowlist through `remora apply`, a live change
  expect(child.stdout).toMatch(/\$ remora apply -f .*policies\.yaml\n(.*created\n)+version \w+/)
  for (const s of ['frontend', 'orders', 'payments']) expect(child.stdout).toContain(`[${s}] bootstrapped with a join token: certificate for spiffe://cluster.local/ns/shop/sa/${s}`)
  expect(child.stdout).toMatch(/authorizationpolicy shop\/payments-allow-frontend created\nversion (\w+)\n {2}version \1 ACKed by all 3 sidecars/)
  expect(child.stdout).toContain('✔ you → frontend → payments (allowed now): HTTP 200')
  expect(child.stdout).toContain('✔ you → frontend → payments (reverted: denied again): HTTP 403')
  expect(child.stdout).toMatch(/control plane version \w+: 3\/3 connected sidecars ACKed it/)
  expect(child.stdout).not.toMatch(/remora_[A-Za-z0-9_-]{20,}|BEGIN [A-Z ]*PRIVATE KEY/) // no admin token, no key
  expect(child.stdout).toContain('demo: everything behaved.')
}, 60_000)
