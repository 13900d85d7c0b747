// The bench app's Node half: a gRPC server (unary bench.Echo/Echo) and a TCP server (echo, or an
// endless byte source), for the h2/gRPC and TCP workloads. The HTTP/1.1 and h2c files are served by
// the app's nginx (bench/lib/contenders.ts, startApp). Plain JavaScript so it runs on bare `node`.
//
//   node grpc-tcp-app.mjs <grpcPort> <tcpPort>
//
// gRPC without .proto compilation: the service is defined by hand with Buffer (de)serializers, so
// a message is its raw bytes (the client sends 1 KiB, the server answers with the same 1 KiB).
// TCP: a connection whose first byte is 0x01 receives an endless stream of 64 KiB chunks (bulk);
// any other connection is echoed byte for byte (ping-pong).
import net from 'node:net'
import grpc from '@grpc/grpc-js'

const [grpcPort, tcpPort] = process.argv.slice(2).map(Number)
if (!grpcPort || !tcpPort) {
  console.error('usage: node grpc-tcp-app.mjs <grpcPort> <tcpPort>')
  process.exit(2)
}

const raw = (b) => b
const ECHO_SERVICE = {
  Echo: { path: '/bench.Echo/Echo', requestStream: false, responseStream: false, requestSerialize: raw, requestDeserialize: raw, responseSerialize: raw, responseDeserialize: raw },
}

const server = new grpc.Server({ 'grpc.max_concurrent_streams': 1000 })
server.addService(ECHO_SERVICE, { Echo: (call, callback) => callback(null, call.request) })
await new Promise((resolve, reject) =>
  server.bindAsync(`127.0.0.1:${grpcPort}`, grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())),
)

const CHUNK = Buffer.alloc(64 * 1024, 's')
const tcp = net.createServer({ noDelay: true }, (sock) => {
  sock.on('error', () => sock.destroy())
  sock.once('data', (first) => {
    if (first[0] === 0x01) {
      // bulk: write while the socket takes it, resume on drain
      const pump = () => {
        while (!sock.destroyed && sock.write(CHUNK));
      }
      sock.on('drain', pump)
      sock.on('data', () => {}) // discard whatever else the client sends
      pump()
      return
    }
    sock.write(first)
    sock.pipe(sock)
  })
})
await new Promise((resolve, reject) => {
  tcp.once('error', reject)
  tcp.listen({ port: tcpPort, host: '127.0.0.1', backlog: 4096 }, resolve)
})

const shutdown = () => {
  tcp.close()
  server.forceShutdown()
  process.exit(0)
}
process.on('SIGTERM', shutdown)
process.on('SIGINT', shutdown)
console.log(`listening grpc 127.0.0.1:${grpcPort} tcp 127.0.0.1:${tcpPort}`)
