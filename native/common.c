/* The addon's shared parts (common.h). */
#include "common.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void throw_errno(napi_env env, const char *what, int err) {
  char msg[256];
  char code[32];
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(err));
  snprintf(code, sizeof code, "%d", err);
  napi_value error, message, errno_value, code_value;
  if (napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &message) != napi_ok) return;
  if (napi_create_error(env, NULL, message, &error) != napi_ok) return;
  /* Same shape as Node's system errors: err.errno (number) and err.code (name). */
  if (napi_create_int32(env, err, &errno_value) == napi_ok)
    napi_set_named_property(env, error, "errno", errno_value);
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
  const char *name = strerrorname_np(err);
#else
  const char *name = NULL;
#endif
  if (napi_create_string_utf8(env, name ? name : code, NAPI_AUTO_LENGTH, &code_value) == napi_ok)
    napi_set_named_property(env, error, "code", code_value);
  napi_throw(env, error);
}

int32_t int_arg(napi_env env, napi_value *argv, size_t argc, size_t i, const char *name) {
  napi_valuetype type;
  int32_t value;
  if (i >= argc || napi_typeof(env, argv[i], &type) != napi_ok || type != napi_number ||
      napi_get_value_int32(env, argv[i], &value) != napi_ok || value < 0) {
    char msg[64];
    snprintf(msg, sizeof msg, "%s must be a non-negative integer", name);
    napi_throw_type_error(env, NULL, msg);
    return -1;
  }
  return value;
}

int call_args(napi_env env, napi_callback_info info, size_t n, napi_value *argv, const char *usage) {
  size_t argc = n;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return -1;
  if (argc < n) {
    napi_throw_type_error(env, NULL, usage);
    return -1;
  }
  return 0;
}

void *typed_array_arg(napi_env env, napi_value value, napi_typedarray_type type, size_t *length,
                      const char *name) {
  napi_typedarray_type got;
  void *data = NULL;
  if (napi_get_typedarray_info(env, value, &got, length, &data, NULL, NULL) != napi_ok || got != type) {
    char msg[64];
    snprintf(msg, sizeof msg, "%s must be %s", name, type == napi_int32_array ? "an Int32Array" : "a Uint8Array");
    napi_throw_type_error(env, NULL, msg);
    return NULL;
  }
  return data;
}

static void watch_free(uv_handle_t *handle) { free(handle); }

static void watch_release(watch *w) {
  if (w->callback) napi_delete_reference(w->env, w->callback);
  if (w->async) napi_async_destroy(w->env, w->async);
  w->callback = NULL;
  w->async = NULL;
  if (w->release) w->release(w);
}

int watch_start(watch *w, uv_loop_t *loop, napi_value callback, const char *name, uv_poll_cb on_poll) {
  napi_env env = w->env;
  int rc = uv_poll_init_socket(loop, &w->poll, w->fd);
  if (rc < 0) {
    close(w->fd);
    watch_release(w);
    free(w);
    throw_errno(env, "uv_poll_init", -rc);
    return -1;
  }
  w->polling = 1;
  napi_value name_value, resource;
  if (napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &name_value) != napi_ok ||
      napi_create_object(env, &resource) != napi_ok ||
      napi_create_reference(env, callback, 1, &w->callback) != napi_ok ||
      napi_async_init(env, resource, name_value, &w->async) != napi_ok ||
      (rc = uv_poll_start(&w->poll, UV_READABLE, on_poll)) < 0) {
    watch_stop(w);
    if (rc < 0) throw_errno(env, "uv_poll_start", -rc);
    return -1;
  }
  return 0;
}

void watch_call(watch *w, size_t argc, napi_value *argv) {
  napi_env env = w->env;
  napi_value cb, this_arg, result;
  napi_get_global(env, &this_arg); /* make_callback needs an object receiver */
  if (napi_get_reference_value(env, w->callback, &cb) != napi_ok || cb == NULL) return;
  if (napi_make_callback(env, w->async, this_arg, cb, argc, argv, &result) != napi_ok) {
    bool pending = false;
    napi_value exception;
    if (napi_is_exception_pending(env, &pending) == napi_ok && pending &&
        napi_get_and_clear_last_exception(env, &exception) == napi_ok)
      napi_fatal_exception(env, exception);
  }
}

void watch_stop(watch *w) {
  w->closed = 1;
  if (w->polling) uv_poll_stop(&w->poll);
  close(w->fd);
  watch_release(w);
  if (w->polling)
    uv_close((uv_handle_t *)&w->poll, watch_free);
  else
    free(w);
}

typedef struct {
  watch *w; /* NULL once closed */
} watch_box_t;

static void watch_box_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  watch_box_t *box = data;
  if (box->w) watch_stop(box->w);
  free(box);
}

napi_value watch_box(napi_env env, watch *w) {
  watch_box_t *box = malloc(sizeof *box);
  if (!box) {
    watch_stop(w);
    throw_errno(env, "handle", ENOMEM);
    return NULL;
  }
  box->w = w;
  napi_value handle;
  if (napi_create_external(env, box, watch_box_finalize, NULL, &handle) != napi_ok) {
    watch_stop(w);
    free(box);
    return NULL;
  }
  return handle;
}

static watch_box_t *box_arg(napi_env env, napi_value arg, const char *what) {
  napi_valuetype type;
  void *data = NULL;
  if (arg == NULL || napi_typeof(env, arg, &type) != napi_ok || type != napi_external ||
      napi_get_value_external(env, arg, &data) != napi_ok || data == NULL) {
    char msg[96];
    snprintf(msg, sizeof msg, "expected a %s handle", what);
    napi_throw_type_error(env, NULL, msg);
    return NULL;
  }
  return data;
}

watch *watch_arg(napi_env env, napi_value arg, const char *what, int closed_ok) {
  watch_box_t *box = box_arg(env, arg, what);
  if (!box) return NULL;
  if (!box->w && !closed_ok) throw_errno(env, what, EBADF);
  return box->w;
}

napi_value watch_set_ref(napi_env env, napi_callback_info info, const char *what) {
  size_t argc = 2;
  napi_value argv[2];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  watch_box_t *box = box_arg(env, argc > 0 ? argv[0] : NULL, what);
  if (!box) return NULL;
  bool ref = false;
  if (argc < 2 || napi_get_value_bool(env, argv[1], &ref) != napi_ok) {
    napi_throw_type_error(env, NULL, "ref must be a boolean");
    return NULL;
  }
  if (!box->w || !box->w->polling) return NULL;
  if (ref)
    uv_ref((uv_handle_t *)&box->w->poll);
  else
    uv_unref((uv_handle_t *)&box->w->poll);
  return NULL;
}

napi_value watch_close(napi_env env, napi_callback_info info, const char *what) {
  size_t argc = 1;
  napi_value argv[1];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  watch_box_t *box = box_arg(env, argc > 0 ? argv[0] : NULL, what);
  if (!box) return NULL;
  if (box->w) watch_stop(box->w);
  box->w = NULL;
  return NULL;
}
