// remora's one native call: where a TCP connection was headed before iptables' REDIRECT sent it to
// the sidecar (netfilter's SO_ORIGINAL_DST, IP6T_SO_ORIGINAL_DST for IPv6). Node exposes neither.
// Node-API only (no V8 or libuv headers), so one build loads on every Node version with N-API 8.
// The loader is proxy/native; it picks the family and maps errno to its error codes.
#include <napi.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <string>

// <linux/netfilter_ipv4.h> and <linux/netfilter_ipv6/ip6_tables.h> define both as 80, but those
// kernel headers collide with glibc's <netinet/in.h>: the stable uapi values are spelt out.
#ifndef SO_ORIGINAL_DST
#define SO_ORIGINAL_DST 80
#endif
#ifndef IP6T_SO_ORIGINAL_DST
#define IP6T_SO_ORIGINAL_DST 80
#endif
#ifndef SOL_IP
#define SOL_IP IPPROTO_IP
#endif
#ifndef SOL_IPV6
#define SOL_IPV6 IPPROTO_IPV6
#endif

namespace {

Napi::Value ThrowErrno(Napi::Env env, int err, const char* call) {
  Napi::Error e = Napi::Error::New(env, std::string(call) + ": " + std::strerror(err));
  e.Set("errno", Napi::Number::New(env, err));
  e.Set("syscall", Napi::String::New(env, "getsockopt"));
  e.ThrowAsJavaScriptException();
  return env.Undefined();
}

Napi::Value ThrowType(Napi::Env env, const char* message) {
  Napi::TypeError::New(env, message).ThrowAsJavaScriptException();
  return env.Undefined();
}

// originalDst(fd, family): {address, port, family}. family 4 asks SOL_IP (also right for an
// IPv4-mapped connection on a dual-stack IPv6 socket), 6 asks SOL_IPV6. Throws an Error with
// `errno` (ENOENT: not NATed; ENOPROTOOPT: no conntrack; EBADF, ENOTSOCK: not a socket).
Napi::Value OriginalDst(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 2 || !info[0].IsNumber() || !info[1].IsNumber()) {
    return ThrowType(env, "originalDst(fd: number, family: 4 | 6)");
  }
  const int fd = info[0].As<Napi::Number>().Int32Value();
  const int family = info[1].As<Napi::Number>().Int32Value();
  if (fd < 0) return ThrowType(env, "originalDst: fd must be a non-negative integer");
  if (family != 4 && family != 6) return ThrowType(env, "originalDst: family must be 4 or 6");
  const bool v4 = family == 4;
  sockaddr_storage ss;
  std::memset(&ss, 0, sizeof ss);
  // The exact size of the family's sockaddr, as the kernel's getorigdst() expects.
  socklen_t len = v4 ? sizeof(sockaddr_in) : sizeof(sockaddr_in6);
  if (getsockopt(fd, v4 ? SOL_IP : SOL_IPV6, v4 ? SO_ORIGINAL_DST : IP6T_SO_ORIGINAL_DST, &ss, &len) != 0) {
    return ThrowErrno(env, errno, v4 ? "getsockopt(SOL_IP, SO_ORIGINAL_DST)" : "getsockopt(SOL_IPV6, IP6T_SO_ORIGINAL_DST)");
  }
  const auto* in4 = reinterpret_cast<const sockaddr_in*>(&ss);
  const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&ss);
  char text[INET6_ADDRSTRLEN] = {0};
  const void* addr = v4 ? static_cast<const void*>(&in4->sin_addr) : static_cast<const void*>(&in6->sin6_addr);
  if (inet_ntop(v4 ? AF_INET : AF_INET6, addr, text, sizeof text) == nullptr) return ThrowErrno(env, errno, "inet_ntop");
  const int port = ntohs(v4 ? in4->sin_port : in6->sin6_port);
  Napi::Object out = Napi::Object::New(env);
  out.Set("address", Napi::String::New(env, text));
  out.Set("port", Napi::Number::New(env, port));
  out.Set("family", Napi::Number::New(env, family));
  return out;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("originalDst", Napi::Function::New(env, OriginalDst, "originalDst"));
  return exports;
}

}  // namespace

NODE_API_MODULE(original_dst, Init)
