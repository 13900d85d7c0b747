// Address and CIDR parsing as Go's net/netip (what Istio validates with), plus the request-side
// leniencies Node needs (IPv4-mapped IPv6, zones).
import { expect, test } from 'vitest'
import { cidrContains, parseCidr, parseRequestIp } from '../../../proxy/policy/ip.js'

const contains = (cidr: string, ip: string) => cidrContains(parseCidr(cidr)!, parseRequestIp(ip)!)

test.each([
  ['10.0.0.0/8', '10.255.1.2', true],
  ['10.0.0.0/8', '11.0.0.1', false],
  ['10.1.2.3', '10.1.2.3', true],
  ['10.1.2.3', '10.1.2.4', false],
  ['0.0.0.0/0', '203.0.113.7', true],
  ['10.1.2.3/24', '10.1.2.200', true], // host bits are masked off
  ['255.255.255.255/32', '255.255.255.255', true],
  ['2001:db8::/32', '2001:db8:ffff::1', true],
  ['2001:db8::/32', '2001:db9::1', false],
  ['::/0', '::1', true],
  ['::1', '::1', true],
  ['fe80::/10', 'fe80::1%eth0', true],
  ['2001:db8::/32', '10.0.0.1', false],
  ['10.0.0.0/8', '2001:db8::1', false],
  ['10.0.0.0/8', '::ffff:10.1.2.3', true],
  ['::ffff:10.0.0.0/104', '10.9.9.9', true],
  ['::ffff:0:0/96', '192.168.0.1', true],
  ['1:2:3:4:5:6:7:8/128', '1:2:3:4:5:6:7:8', true],
  ['::ffff:1.2.3.4', '1.2.3.4', true],
])('%s contains %s: %s', (cidr, ip, want) => {
  expect(contains(cidr, ip)).toBe(want)
})

test.each(['', '10.0.0', '10.0.0.256', '10.01.0.1', '10.0.0.0/33', '10.0.0.0/', '10.0.0.0/08', '1::2::3', '12345::', 'fe80::1%eth0', '::1/129', 'x', '1.2.3.4/-1', ':::', '1:2:3:4:5:6:7:8:9'])(
  'invalid CIDR %j',
  (s) => {
    expect(parseCidr(s)).toBeNull()
  },
)

test('request addresses that cannot be parsed are null', () => {
  expect(parseRequestIp('localhost')).toBeNull()
  expect(parseRequestIp('')).toBeNull()
})
