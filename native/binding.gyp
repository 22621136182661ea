{
  "targets": [
    {
      "target_name": "ucarp_native",
      "sources": ["ucarp_native.c", "common.c", "rawsock.c", "digest.c"],
      "cflags": ["-Wall", "-Wextra", "-Werror", "-std=gnu11"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
