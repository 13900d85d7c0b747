// Protocol detection on first bytes and the ClientHello reader (RFC 9113 §3.4, RFC 8446 §4.1.2,
// RFC 6066 §3), with the inputs an opaque protocol or an attacker sends.
import tls from 'node:tls'
import net from 'node:net'
import { describe, expect, test } from 'vitest'
import { detect, detectDirect, parseClientHello, H2_PREFACE } from '../../../proxy/l4/index.js'

const b = (s: string): Buffer => Buffer.from(s, 'latin1')

describe('detect (a redirected connection)', () => {
  test('HTTP/1.x needs a whole request line', () => {
    expect(detect(b('GET / HTTP/1.1\r\n'))).toBe('http1')
    expect(detect(b('POST /a?b=c HTTP/1.0\r\n'))).toBe('http1')
    expect(detect(b('GET / HT'))).toBe('more')
    expect(detect(b('GET'))).toBe('more')
  })
  test('a line protocol that starts with an upper-case word is TCP, not HTTP', () => {
    expect(detect(b('BALANCE alice\n'))).toBe('tcp')
    expect(detect(b('AUTH PLAIN x\r\n'))).toBe('tcp')
    expect(detect(b('SET k v\r\n'))).toBe('tcp')
    expect(detect(b('*1\r\n$4\r\nPING\r\n'))).toBe('tcp') // RESP
    expect(detect(b('GET / FTP/1\r\n'))).toBe('tcp')
  })
  test('binary protocols are TCP at once', () => {
    expect(detect(Buffer.from([0, 0, 0, 8, 4, 210, 22, 47]))).toBe('tcp') // Postgres SSLRequest
    expect(detect(Buffer.from([0x16, 0x01]))).toBe('more')
    expect(detect(Buffer.from([0x16, 0x01, 0x02]))).toBe('tcp')
  })
  test('the h2 preface, whole', () => {
    expect(detect(H2_PREFACE)).toBe('h2')
    expect(detect(H2_PREFACE.subarray(0, 10))).toBe('more')
    expect(detect(b('PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n'))).toBe('tcp')
  })
})

describe('detectDirect (a connection to the listener itself)', () => {
  test('anything but TLS or a leading P is HTTP/1 at its first byte', () => {
    expect(detectDirect(b('G'))).toBe('http1')
    expect(detectDirect(b('\x00'))).toBe('http1')
    expect(detectDirect(b('PU'))).toBe('http1')
    expect(detectDirect(b('PRI'))).toBe('more')
    expect(detectDirect(H2_PREFACE)).toBe('h2')
    expect(detectDirect(Buffer.from([0x16]))).toBe('tls')
  })
})

/** A real ClientHello as Node writes it. */
function clientHello(o: tls.ConnectionOptions): Promise<Buffer> {
  return new Promise((resolve) => {
    const srv = net.createServer((s) => {
      s.once('data', (c: Buffer) => {
        resolve(c)
        s.destroy()
        srv.close()
      })
    })
    srv.listen(0, '127.0.0.1', () => {
      const c = tls.connect({ port: (srv.address() as net.AddressInfo).port, host: '127.0.0.1', rejectUnauthorized: false, ...o })
      c.on('error', () => {})
    })
  })
}

describe('parseClientHello', () => {
  test('reads SNI and ALPN from a real ClientHello; incomplete records ask for more', async () => {
    const hello = await clientHello({ servername: 'API.Example.com', ALPNProtocols: ['h2', 'http/1.1'] })
    expect(detect(hello)).toBe('tls')
    expect(parseClientHello(hello)).toEqual({ sni: 'api.example.com', alpn: ['h2', 'http/1.1'] })
    expect(parseClientHello(hello.subarray(0, 40))).toBe('more')
  })
  test('no SNI', async () => {
    const hello = await clientHello({})
    expect(parseClientHello(hello)).toEqual({ sni: null, alpn: [] })
  })
  test('garbage and hostile lengths are refused, never read past the buffer', () => {
    expect(parseClientHello(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x05, 0x02, 0, 0, 1, 0]))).toBeNull()
    expect(parseClientHello(Buffer.from([0x16, 0x03, 0x01, 0xff, 0xff]))).toBeNull()
    const truncated = Buffer.from([0x16, 0x03, 0x01, 0x00, 0x08, 0x01, 0x00, 0xff, 0xff, 0x03, 0x03, 0, 0])
    expect(() => parseClientHello(truncated)).not.toThrow()
  })
})

describe('canonicalIp', () => {
  test('one spelling per address, as the kernel reports it', async () => {
    const { canonicalIp } = await import('../../../proxy/l4/index.js')
    expect(canonicalIp('::ffff:10.0.0.1')).toBe('10.0.0.1')
    expect(canonicalIp('FD00:0DAE:0:0:0:0:0:100')).toBe('fd00:dae::100')
    expect(canonicalIp('fd00:dae::100')).toBe('fd00:dae::100')
    expect(canonicalIp('10.0.0.1')).toBe('10.0.0.1')
    expect(canonicalIp('not-an-ip')).toBe('not-an-ip')
  })
})
