/*
 * What the addon's parts share: errors thrown the way Node throws system errors, argument
 * checks, and the one implementation of a socket watched by libuv and handed to JavaScript as
 * a boxed handle (the netlink subscription and the raw IP sockets).
 */
#ifndef UCARP_NATIVE_COMMON_H
#define UCARP_NATIVE_COMMON_H

#define _GNU_SOURCE
#include <node_api.h>
#include <stdint.h>
#include <uv.h>

/* Throws an Error with errno (number) and code (its name), like Node's system errors. */
void throw_errno(napi_env env, const char *what, int err);

/*
 * The call's first n arguments into argv: 0, or -1 with a TypeError naming the call's `usage`
 * when fewer were given.
 */
int call_args(napi_env env, napi_callback_info info, size_t n, napi_value *argv, const char *usage);

/* Reads argument i as a non-negative int32; throws a TypeError and returns -1 otherwise. */
int32_t int_arg(napi_env env, napi_value *argv, size_t argc, size_t i, const char *name);

/*
 * A typed array argument of `type` (napi_uint8_array also takes a Buffer): its memory and its
 * length in elements; NULL with a TypeError thrown otherwise.
 */
void *typed_array_arg(napi_env env, napi_value value, napi_typedarray_type type, size_t *length,
                      const char *name);

/*
 * A socket read when libuv says it is readable, calling one JavaScript function. The struct
 * is the first member of its owner's struct, so that one free() releases the owner, and the
 * uv_poll_t is the first member here, so that libuv callbacks cast back to it.
 */
typedef struct watch watch;
struct watch {
  uv_poll_t poll;
  napi_env env;
  napi_ref callback;
  napi_async_context async;
  int fd;
  int closed;
  /* 1 once the poll handle is initialised: from then on libuv frees the memory. */
  int polling;
  /* Releases what the owner holds besides the fd (references, buffers); may be NULL. */
  void (*release)(watch *w);
};

/*
 * Starts watching `w->fd` (set by the caller, like `env` and `release`) for readability with
 * `on_poll`, calling `callback` through an async context named `name`. On failure throws,
 * closes the fd and frees `w`, and returns -1. The handle keeps the event loop alive.
 */
int watch_start(watch *w, uv_loop_t *loop, napi_value callback, const char *name, uv_poll_cb on_poll);

/*
 * Calls the watch's function with argv inside the caller's handle scope; an exception thrown
 * by it goes to process 'uncaughtException', as there is no JavaScript frame below us.
 */
void watch_call(watch *w, size_t argc, napi_value *argv);

/* Stops reading, closes the fd, releases everything; the memory goes once libuv is done. */
void watch_stop(watch *w);

/*
 * Wraps `w` in a JavaScript external: JavaScript holds a box, not the watch, so that after a
 * close the box is emptied rather than left dangling; a box collected while open stops it.
 * On failure stops the watch and returns NULL.
 */
napi_value watch_box(napi_env env, watch *w);

/*
 * The watch behind a handle argument: NULL with a TypeError thrown when the argument is not a
 * handle; NULL without exception when it is closed and `closed_ok`, with an EBADF error when not.
 */
watch *watch_arg(napi_env env, napi_value arg, const char *what, int closed_ok);

/* The body of ref(handle, bool): whether the open handle keeps the process alive. */
napi_value watch_set_ref(napi_env env, napi_callback_info info, const char *what);

/* The body of close(handle): idempotent. */
napi_value watch_close(napi_env env, napi_callback_info info, const char *what);

/* Defined in rawsock.c: the raw IPv4/IPv6 sockets. */
void define_rawsock(napi_env env, napi_value exports);

/* Defined in digest.c: the per-packet part of the CARP digest. */
void define_digest(napi_env env, napi_value exports);

#endif
