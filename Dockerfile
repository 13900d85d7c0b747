# syntax=docker/dockerfile:1
# One image for every role: `remora proxy` (the sidecar), `remora control-plane`, and
# `remora init-iptables` (the injected init container, which runs as root with NET_ADMIN).
#
# Base: the current Node.js LTS (26) on Debian slim. Pin it by digest for reproducible builds and
# reviewable upgrades, e.g. NODE_IMAGE=node:26-slim@sha256:<digest> (the digest from
# `docker buildx imagetools inspect node:26-slim`), and bump the pin deliberately.
ARG NODE_IMAGE=node:26-slim

# --- build: full dependency tree, the native addon, TypeScript → dist/ ----------------------------
FROM ${NODE_IMAGE} AS build
# The native addon (native/original_dst.cc: SO_ORIGINAL_DST) is compiled by the root package's
# install script during `npm ci` (node-gyp): it needs a C++ compiler, make and python3, and the
# image's own Node headers (/usr/local/include/node), so node-gyp downloads nothing.
RUN apt-get update \
 && apt-get install -y --no-install-recommends g++ make python3 \
 && rm -rf /var/lib/apt/lists/*
ENV npm_config_nodedir=/usr/local
WORKDIR /app
COPY package.json package-lock.json binding.gyp ./
COPY native ./native
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY proxy ./proxy
COPY control-plane ./control-plane
COPY cli ./cli
RUN npm run build

# --- runtime: production dependencies and dist/ only ----------------------------------------------
FROM ${NODE_IMAGE} AS runtime
# iptables for `remora init-iptables` (writes the interception rules inside the pod's network
# namespace); nothing else is added to the slim base.
RUN apt-get update \
 && apt-get install -y --no-install-recommends iptables \
 && rm -rf /var/lib/apt/lists/*
ENV NODE_ENV=production
WORKDIR /app
# No compiler here: lifecycle scripts (the addon's build) are off for this stage's RUNs (an ARG is
# not kept in the image's environment), and the addon built above is copied in. Node-API: the
# build loads on this Node whatever its version.
ARG npm_config_ignore_scripts=true
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
COPY --from=build /app/build/Release/original_dst.node ./build/Release/original_dst.node

# UID/GID 1337, as Istio's proxy: the interception rules exclude this UID so that the sidecar's own
# traffic is not redirected back into itself. Root-owned, read-only files: the process cannot
# change its own code.
USER 1337:1337

# 15001 outbound, 15006 inbound, 15000 admin (loopback by default), 15090 metrics.
EXPOSE 15001 15006 15000 15090

# The sidecar's readiness from its admin endpoint (/ready answers 200 once listeners are up and
# credentials loaded, 503 before). Node itself is the client: the slim image has no curl.
# Kubernetes ignores HEALTHCHECK and uses the probes in the manifests; for the control-plane role
# override it (`--health-cmd`, or `HEALTHCHECK NONE` in a derived image).
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD ["node", "-e", "require('node:http').get({ host: '127.0.0.1', port: 15000, path: '/ready', timeout: 2000 }, (r) => process.exit(r.statusCode === 200 ? 0 : 1)).on('timeout', () => process.exit(1)).on('error', () => process.exit(1))"]

# V8 sizing: `remora proxy` starts again in the same process (process.execve, this Node has it) with
# --max-semi-space-size=4 --max-old-space-size=256 before it loads anything: under load a sidecar
# peaks at ~115 MB RSS with them and ~175 MB without (bench/hot-path.md). REMORA_V8_FLAGS replaces
# the list (`off`: V8's defaults); flags in NODE_OPTIONS win. The other roles keep V8's defaults.
ENTRYPOINT ["node", "/app/dist/cli/main.js"]
CMD ["--help"]
