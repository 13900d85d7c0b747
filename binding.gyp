{
  # The sidecar's native addon (native/original_dst.cc → build/Release/original_dst.node), built by
  # the root package's `install` script (`npm ci`, `npm rebuild`, `npm run build:native`).
  # Node-API only: one build loads on every supported Node version.
  "targets": [
    {
      "target_name": "original_dst",
      "sources": ["native/original_dst.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags_cc": ["-Wall", "-Wextra"]
    }
  ]
}
