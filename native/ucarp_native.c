/*
 * The few system calls Node cannot make by itself: an AF_PACKET socket for gratuitous ARP and
 * neighbour advertisements, the systemd readiness datagram (Node has no AF_UNIX SOCK_DGRAM), a
 * netlink notification socket that survives a receive-buffer overrun, the child-subreaper flag
 * with a targeted waitpid() for script process trees, execve() for `ucarpctl restart`
 * (process.execve exists only from Node 22.15/23.11) and posix_spawn for scripts. The raw IP
 * sockets of CARP and VRRP, read and written in batches, are in rawsock.c; what the parts
 * share, in common.c.
 * Sends are synchronous: a GARP burst during a mass failover is one sendmmsg() per 64 frames.
 */
#include "common.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <linux/netlink.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

/* Minimum Ethernet frame without FCS; the kernel does not pad AF_PACKET SOCK_RAW frames. */
#define MIN_FRAME 60
#define MAX_FRAME 1514

static napi_value packet_open(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  int32_t ifindex = int_arg(env, argv, argc, 0, "ifindex");
  if (ifindex < 0) return NULL;
  if (ifindex == 0) {
    napi_throw_range_error(env, NULL, "ifindex must be > 0");
    return NULL;
  }

  /*
   * Protocol 0: the socket receives nothing, so no frame ever queues up in a buffer nobody
   * reads. Sending still works because every frame we write is complete (SOCK_RAW).
   */
  int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    throw_errno(env, "socket(AF_PACKET)", errno);
    return NULL;
  }
  struct sockaddr_ll sll;
  memset(&sll, 0, sizeof sll);
  sll.sll_family = AF_PACKET;
  sll.sll_protocol = 0;
  sll.sll_ifindex = ifindex;
  if (bind(fd, (struct sockaddr *)&sll, sizeof sll) < 0) {
    int err = errno;
    close(fd);
    throw_errno(env, "bind(AF_PACKET)", err);
    return NULL;
  }
  napi_value result;
  napi_create_int32(env, fd, &result);
  return result;
}

/* The frame to put on the wire: padded to the minimum length into `padded` when shorter. */
static int frame_arg(napi_env env, napi_value value, const void **out, size_t *len, unsigned char *padded) {
  bool is_buffer = false;
  void *data;
  if (value == NULL || napi_is_buffer(env, value, &is_buffer) != napi_ok || !is_buffer ||
      napi_get_buffer_info(env, value, &data, len) != napi_ok) {
    napi_throw_type_error(env, NULL, "frame must be a Buffer");
    return -1;
  }
  if (*len < ETH_HLEN || *len > MAX_FRAME) {
    napi_throw_range_error(env, NULL, "frame must be 14..1514 bytes");
    return -1;
  }
  *out = data;
  if (*len < MIN_FRAME) {
    memset(padded, 0, MIN_FRAME);
    memcpy(padded, data, *len);
    *out = padded;
    *len = MIN_FRAME;
  }
  return 0;
}

static napi_value packet_send(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  int32_t fd = int_arg(env, argv, argc, 0, "fd");
  if (fd < 0) return NULL;
  unsigned char padded[MIN_FRAME];
  const void *out;
  size_t len;
  if (frame_arg(env, argc < 2 ? NULL : argv[1], &out, &len, padded) < 0) return NULL;
  ssize_t sent;
  do {
    sent = send(fd, out, len, 0);
  } while (sent < 0 && errno == EINTR);
  if (sent < 0) {
    throw_errno(env, "send(AF_PACKET)", errno);
    return NULL;
  }
  if ((size_t)sent != len) throw_errno(env, "send(AF_PACKET) short write", EIO);
  return NULL;
}

#define PACKET_SEND_CHUNK 64

/*
 * packetSendMany(fd, frames): the frames in order, PACKET_SEND_CHUNK per sendmmsg(). Throws at
 * the first refused frame, after those before it went out, as a loop of packetSend would.
 */
static napi_value packet_send_many(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  int32_t fd = int_arg(env, argv, argc, 0, "fd");
  if (fd < 0) return NULL;
  bool is_array = false;
  uint32_t count = 0;
  if (argc < 2 || napi_is_array(env, argv[1], &is_array) != napi_ok || !is_array ||
      napi_get_array_length(env, argv[1], &count) != napi_ok) {
    napi_throw_type_error(env, NULL, "frames must be an array of Buffers");
    return NULL;
  }
  struct mmsghdr msgs[PACKET_SEND_CHUNK];
  struct iovec iovs[PACKET_SEND_CHUNK];
  unsigned char padded[PACKET_SEND_CHUNK][MIN_FRAME];
  uint32_t done = 0;
  while (done < count) {
    unsigned n = count - done < PACKET_SEND_CHUNK ? count - done : PACKET_SEND_CHUNK;
    memset(msgs, 0, sizeof msgs[0] * n);
    for (unsigned j = 0; j < n; j++) {
      napi_value frame;
      const void *out;
      size_t len;
      if (napi_get_element(env, argv[1], done + j, &frame) != napi_ok ||
          frame_arg(env, frame, &out, &len, padded[j]) < 0)
        return NULL;
      iovs[j].iov_base = (void *)out;
      iovs[j].iov_len = len;
      msgs[j].msg_hdr.msg_iov = &iovs[j];
      msgs[j].msg_hdr.msg_iovlen = 1;
    }
    int r = sendmmsg(fd, msgs, n, 0);
    if (r < 0) {
      if (errno == EINTR) continue;
      throw_errno(env, "sendmmsg(AF_PACKET)", errno);
      return NULL;
    }
    for (int j = 0; j < r; j++) {
      if (msgs[j].msg_len != iovs[j].iov_len) {
        throw_errno(env, "send(AF_PACKET) short write", EIO);
        return NULL;
      }
    }
    done += (uint32_t)r;
  }
  return NULL;
}

static napi_value close_fd(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  int32_t fd = int_arg(env, argv, argc, 0, "fd");
  if (fd < 0) return NULL;
  /* Linux releases the descriptor even when close() reports EINTR: never retry. */
  if (close(fd) < 0 && errno != EINTR) throw_errno(env, "close", errno);
  return NULL;
}

static napi_value sd_notify(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  napi_valuetype type;
  if (argc < 1 || napi_typeof(env, argv[0], &type) != napi_ok || type != napi_string) {
    napi_throw_type_error(env, NULL, "state must be a string");
    return NULL;
  }
  size_t state_len;
  if (napi_get_value_string_utf8(env, argv[0], NULL, 0, &state_len) != napi_ok) return NULL;
  char *state = malloc(state_len + 1);
  if (!state) {
    throw_errno(env, "sdNotify", ENOMEM);
    return NULL;
  }
  napi_get_value_string_utf8(env, argv[0], state, state_len + 1, &state_len);

  napi_value result;
  const char *path = getenv("NOTIFY_SOCKET");
  if (!path || !*path) {
    free(state);
    napi_get_boolean(env, false, &result);
    return result;
  }

  struct sockaddr_un sun;
  memset(&sun, 0, sizeof sun);
  sun.sun_family = AF_UNIX;
  size_t path_len = strlen(path);
  if (path[0] != '/' && path[0] != '@') {
    free(state);
    throw_errno(env, "sdNotify: NOTIFY_SOCKET must be an absolute path or @abstract", EAFNOSUPPORT);
    return NULL;
  }
  if (path_len > sizeof sun.sun_path) {
    free(state);
    throw_errno(env, "sdNotify: NOTIFY_SOCKET too long", ENAMETOOLONG);
    return NULL;
  }
  memcpy(sun.sun_path, path, path_len);
  /* Abstract namespace: leading NUL, and the address length counts the name exactly. */
  if (path[0] == '@') sun.sun_path[0] = '\0';
  socklen_t addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + path_len);
  if (path[0] == '/' && path_len < sizeof sun.sun_path) addr_len += 1;

  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    int err = errno;
    free(state);
    throw_errno(env, "sdNotify: socket", err);
    return NULL;
  }
  ssize_t sent;
  do {
    sent = sendto(fd, state, state_len, MSG_NOSIGNAL, (struct sockaddr *)&sun, addr_len);
  } while (sent < 0 && errno == EINTR);
  int err = errno;
  close(fd);
  free(state);
  if (sent < 0) {
    throw_errno(env, "sdNotify: sendto", err);
    return NULL;
  }
  napi_get_boolean(env, true, &result);
  return result;
}

/*
 * Netlink multicast subscription. The `netlink` npm package aborts the whole process when its
 * socket overruns (libuv reports POLLERR as a poll error and the package's handler throws a C++
 * exception outside any JS frame). Here an overrun is an ordinary event: the callback gets
 * (null, ENOBUFS) and the JS side re-reads the state it may have missed.
 */
#define NL_RECV_BUFFER 65536
#define NL_MAX_PER_WAKEUP 256

typedef struct {
  watch w; /* first member: the watch, and so the poll handle, cast back to it */
  unsigned char buffer[NL_RECV_BUFFER];
} nl_watch;

static const char NL_WHAT[] = "netlink subscription";

/* Calls the JS callback with (data, errno); exactly one of them is meaningful. */
static void nl_deliver(nl_watch *s, const void *data, size_t len, int err) {
  napi_env env = s->w.env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value argv[2];
  if (data) {
    void *copy;
    napi_create_buffer_copy(env, len, data, &copy, &argv[0]);
  } else {
    napi_get_null(env, &argv[0]);
  }
  napi_create_int32(env, err, &argv[1]);
  watch_call(&s->w, 2, argv);
  napi_close_handle_scope(env, scope);
}

/* Reads what is queued; returns the first error other than EAGAIN and ENOBUFS, or 0. */
static int nl_drain(nl_watch *s, int *saw_enobufs) {
  for (int i = 0; i < NL_MAX_PER_WAKEUP && !s->w.closed; i++) {
    ssize_t n = recv(s->w.fd, s->buffer, sizeof s->buffer, MSG_DONTWAIT | MSG_TRUNC);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
      if (errno == ENOBUFS) {
        *saw_enobufs = 1;
        nl_deliver(s, NULL, 0, ENOBUFS);
        continue;
      }
      return errno;
    }
    if ((size_t)n > sizeof s->buffer) {
      /* A datagram that did not fit is as lost as an overrun one. */
      nl_deliver(s, NULL, 0, EMSGSIZE);
      continue;
    }
    nl_deliver(s, s->buffer, (size_t)n, 0);
  }
  return 0;
}

static void nl_on_poll(uv_poll_t *handle, int status, int events) {
  (void)events;
  nl_watch *s = (nl_watch *)handle;
  if (s->w.closed) return;
  int saw_enobufs = 0;
  int err = nl_drain(s, &saw_enobufs);
  if (s->w.closed) return;
  if (err) {
    nl_deliver(s, NULL, 0, err);
    return;
  }
  if (status < 0) {
    /* libuv stops the handle on POLLERR. Reading cleared the overrun error: resume. */
    if (!saw_enobufs) {
      nl_deliver(s, NULL, 0, EIO);
      return;
    }
    if (!s->w.closed) uv_poll_start(&s->w.poll, UV_READABLE, nl_on_poll);
  }
}

static napi_value nl_subscribe(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  int32_t groups = int_arg(env, argv, argc, 0, "groups");
  if (groups < 0) return NULL;
  int32_t rcvbuf = int_arg(env, argv, argc, 1, "rcvbuf");
  if (rcvbuf < 0) return NULL;
  napi_valuetype type;
  if (argc < 3 || napi_typeof(env, argv[2], &type) != napi_ok || type != napi_function) {
    napi_throw_type_error(env, NULL, "callback must be a function");
    return NULL;
  }
  uv_loop_t *loop;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok) return NULL;

  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (fd < 0) {
    throw_errno(env, "socket(AF_NETLINK)", errno);
    return NULL;
  }
  if (rcvbuf > 0 && setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf) < 0) {
    /* Without CAP_NET_ADMIN the size is capped by net.core.rmem_max; overruns stay handled. */
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  }
  struct sockaddr_nl snl;
  memset(&snl, 0, sizeof snl);
  snl.nl_family = AF_NETLINK;
  snl.nl_groups = (uint32_t)groups;
  if (bind(fd, (struct sockaddr *)&snl, sizeof snl) < 0) {
    int err = errno;
    close(fd);
    throw_errno(env, "bind(AF_NETLINK)", err);
    return NULL;
  }

  nl_watch *s = calloc(1, sizeof *s);
  if (!s) {
    close(fd);
    throw_errno(env, "netlinkSubscribe", ENOMEM);
    return NULL;
  }
  s->w.env = env;
  s->w.fd = fd;
  if (watch_start(&s->w, loop, argv[2], "ucarp:netlink", nl_on_poll) < 0) return NULL;
  /* Like a timer with unref(): JS decides whether a subscription keeps the process alive. */
  uv_unref((uv_handle_t *)&s->w.poll);
  return watch_box(env, &s->w);
}

static napi_value nl_set_ref(napi_env env, napi_callback_info info) { return watch_set_ref(env, info, NL_WHAT); }

static napi_value nl_unsubscribe(napi_env env, napi_callback_info info) { return watch_close(env, info, NL_WHAT); }

/* The open subscription behind argument 0; throws (EBADF named `op` when closed) otherwise. */
static nl_watch *nl_open_arg(napi_env env, napi_value *argv, size_t argc, const char *op) {
  bool closed = false;
  watch *w = watch_arg(env, argc > 0 ? argv[0] : NULL, NL_WHAT, 1);
  if (!w && napi_is_exception_pending(env, &closed) == napi_ok && !closed) throw_errno(env, op, EBADF);
  return (nl_watch *)w;
}

/*
 * Sends one datagram of rtnetlink requests to the kernel on a subscription's socket, now: the
 * kernel handles the messages within the call and queues the answers for the reader. A full
 * queue (EAGAIN, ENOBUFS) is thrown like any other errno: the caller decides what fails.
 */
static napi_value nl_send(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  bool is_buffer = false;
  void *data = NULL;
  size_t len = 0;
  if (argc < 2 || napi_is_buffer(env, argv[1], &is_buffer) != napi_ok || !is_buffer ||
      napi_get_buffer_info(env, argv[1], &data, &len) != napi_ok) {
    napi_throw_type_error(env, NULL, "datagram must be a Buffer");
    return NULL;
  }
  nl_watch *s = nl_open_arg(env, argv, argc, "netlinkSend");
  if (!s) return NULL;
  struct sockaddr_nl kernel;
  memset(&kernel, 0, sizeof kernel);
  kernel.nl_family = AF_NETLINK;
  ssize_t n;
  do {
    n = sendto(s->w.fd, data, len, 0, (struct sockaddr *)&kernel, sizeof kernel);
  } while (n < 0 && errno == EINTR);
  if (n < 0) throw_errno(env, "sendto(AF_NETLINK)", errno);
  return NULL;
}

/*
 * Reads one datagram already queued on a subscription's socket, now, without waiting: the
 * answers to what netlinkSend sent are queued within that call. Returns null when nothing is
 * queued; throws ENOBUFS when answers were lost, EMSGSIZE for a datagram that did not fit.
 */
static napi_value nl_receive(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  nl_watch *s = nl_open_arg(env, argv, argc, "netlinkReceive");
  if (!s) return NULL;
  ssize_t n;
  do {
    n = recv(s->w.fd, s->buffer, sizeof s->buffer, MSG_DONTWAIT | MSG_TRUNC);
  } while (n < 0 && errno == EINTR);
  napi_value result;
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      napi_get_null(env, &result);
      return result;
    }
    throw_errno(env, "recv(AF_NETLINK)", errno);
    return NULL;
  }
  if ((size_t)n > sizeof s->buffer) {
    throw_errno(env, "recv(AF_NETLINK)", EMSGSIZE);
    return NULL;
  }
  void *copy;
  if (napi_create_buffer_copy(env, (size_t)n, s->buffer, &copy, &result) != napi_ok) return NULL;
  return result;
}

/* The uid of the process at the other end of a connected AF_UNIX socket (SO_PEERCRED). */
static napi_value peer_uid(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  int32_t fd = int_arg(env, argv, argc, 0, "fd");
  if (fd < 0) return NULL;
  struct ucred cred;
  socklen_t len = sizeof cred;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
    throw_errno(env, "getsockopt(SO_PEERCRED)", errno);
    return NULL;
  }
  napi_value result;
  if (napi_create_uint32(env, cred.uid, &result) != napi_ok) return NULL;
  return result;
}

/*
 * Makes this process the reaper of its orphaned descendants (PR_SET_CHILD_SUBREAPER): a script
 * grandchild whose parent exits is re-parented to us instead of init, so that it can still be
 * found and killed (src/hooks/process-tree.ts). No capability is needed.
 */
static napi_value set_child_subreaper(napi_env env, napi_callback_info info) {
  (void)info;
  if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0)
    throw_errno(env, "prctl(PR_SET_CHILD_SUBREAPER)", errno);
  return NULL;
}

static napi_value is_child_subreaper(napi_env env, napi_callback_info info) {
  (void)info;
  int flag = 0;
  if (prctl(PR_GET_CHILD_SUBREAPER, (unsigned long)&flag, 0, 0, 0) < 0) {
    throw_errno(env, "prctl(PR_GET_CHILD_SUBREAPER)", errno);
    return NULL;
  }
  napi_value result;
  napi_get_boolean(env, flag != 0, &result);
  return result;
}

/*
 * waitpid(pid, WNOHANG) for one given child: 1 when it was a zombie and is now reaped, 0 when it
 * is still running, -1 when it is not (or no longer) our child. Orphans adopted through the
 * subreaper flag are not libuv's children, so libuv never reaps them; waiting for any child
 * (-1) instead would steal the exit status of the processes libuv spawned.
 */
static napi_value reap_child(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  int32_t pid = int_arg(env, argv, argc, 0, "pid");
  if (pid < 0) return NULL;
  if (pid == 0) {
    napi_throw_range_error(env, NULL, "pid must be > 0");
    return NULL;
  }
  pid_t r;
  int status;
  do {
    r = waitpid(pid, &status, WNOHANG);
  } while (r < 0 && errno == EINTR);
  int32_t out;
  if (r == pid) {
    out = 1;
  } else if (r == 0) {
    out = 0;
  } else if (errno == ECHILD) {
    out = -1;
  } else {
    throw_errno(env, "waitpid", errno);
    return NULL;
  }
  napi_value result;
  napi_create_int32(env, out, &result);
  return result;
}

/* Reads argument i as an array of strings into a NULL-terminated, malloc'd vector. */
static char **string_vector(napi_env env, napi_value value, const char *name) {
  bool is_array = false;
  uint32_t n = 0;
  if (napi_is_array(env, value, &is_array) != napi_ok || !is_array ||
      napi_get_array_length(env, value, &n) != napi_ok) {
    char msg[64];
    snprintf(msg, sizeof msg, "%s must be an array of strings", name);
    napi_throw_type_error(env, NULL, msg);
    return NULL;
  }
  char **out = calloc((size_t)n + 1, sizeof *out);
  if (!out) {
    napi_throw_error(env, NULL, "out of memory");
    return NULL;
  }
  for (uint32_t i = 0; i < n; i++) {
    napi_value item;
    napi_valuetype type;
    size_t len = 0;
    if (napi_get_element(env, value, i, &item) != napi_ok || napi_typeof(env, item, &type) != napi_ok ||
        type != napi_string || napi_get_value_string_utf8(env, item, NULL, 0, &len) != napi_ok ||
        !(out[i] = malloc(len + 1)) ||
        napi_get_value_string_utf8(env, item, out[i], len + 1, &len) != napi_ok) {
      for (uint32_t j = 0; j <= i; j++) free(out[j]);
      free(out);
      char msg[64];
      snprintf(msg, sizeof msg, "%s must be an array of strings", name);
      napi_throw_type_error(env, NULL, msg);
      return NULL;
    }
  }
  return out;
}

static void free_vector(char **v) {
  if (!v) return;
  for (char **p = v; *p; p++) free(*p);
  free(v);
}

/*
 * Every descriptor above stderr is marked close-on-exec first: the new image must not inherit
 * the old one's sockets (libuv's and Node's are already, a dependency's raw socket may not
 * be), and an fd it does not know would stay open for its whole life. stdio stays: under
 * systemd it is the journal stream, and Node marks it close-on-exec at start-up.
 */
static int cloexec_all(void) {
  for (int fd = 0; fd <= 2; fd++) {
    int flags = fcntl(fd, F_GETFD);
    if (flags >= 0) fcntl(fd, F_SETFD, flags & ~FD_CLOEXEC);
  }
#ifdef SYS_close_range
  /* CLOSE_RANGE_CLOEXEC (Linux 5.11): one call instead of a walk of /proc/self/fd. */
  if (syscall(SYS_close_range, 3U, ~0U, 4U /* CLOSE_RANGE_CLOEXEC */) == 0) return 0;
#endif
  DIR *d = opendir("/proc/self/fd");
  if (!d) return -1;
  int self = dirfd(d);
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    char *end;
    long fd = strtol(e->d_name, &end, 10);
    if (*end != '\0' || fd < 3 || fd == self) continue;
    int flags = fcntl((int)fd, F_GETFD);
    if (flags >= 0) fcntl((int)fd, F_SETFD, flags | FD_CLOEXEC);
  }
  closedir(d);
  return 0;
}

/*
 * execve(path, argv, envp): replaces the process image, keeping its pid (systemd's MAINPID).
 * Returns only on failure, by throwing. The signal mask is emptied first: execve() keeps it,
 * and a signal the new image finds blocked would never reach its handlers.
 */
static napi_value exec_ve(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  char path[4096];
  size_t len = 0;
  napi_valuetype type;
  if (argc < 3 || napi_typeof(env, argv[0], &type) != napi_ok || type != napi_string ||
      napi_get_value_string_utf8(env, argv[0], path, sizeof path, &len) != napi_ok || len == 0 ||
      len >= sizeof path - 1) {
    napi_throw_type_error(env, NULL, "execve(path, argv, env): path must be a non-empty string");
    return NULL;
  }
  char **args = string_vector(env, argv[1], "argv");
  if (!args) return NULL;
  char **envp = string_vector(env, argv[2], "env");
  if (!envp) {
    free_vector(args);
    return NULL;
  }
  if (cloexec_all() < 0) {
    int err = errno;
    free_vector(args);
    free_vector(envp);
    throw_errno(env, "marking descriptors close-on-exec", err);
    return NULL;
  }
  sigset_t none, old;
  sigemptyset(&none);
  pthread_sigmask(SIG_SETMASK, &none, &old);
  execve(path, args, envp);
  int err = errno;
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  free_vector(args);
  free_vector(envp);
  throw_errno(env, "execve", err);
  return NULL;
}

/* Defined in the spawn block at the end of this file. */
static void define_spawn(napi_env env, napi_value exports);

static napi_value init(napi_env env, napi_value exports) {
  define_spawn(env, exports);
  define_rawsock(env, exports);
  define_digest(env, exports);
  napi_property_descriptor props[] = {
      {"packetOpen", NULL, packet_open, NULL, NULL, NULL, napi_enumerable, NULL},
      {"packetSend", NULL, packet_send, NULL, NULL, NULL, napi_enumerable, NULL},
      {"packetSendMany", NULL, packet_send_many, NULL, NULL, NULL, napi_enumerable, NULL},
      {"close", NULL, close_fd, NULL, NULL, NULL, napi_enumerable, NULL},
      {"sdNotify", NULL, sd_notify, NULL, NULL, NULL, napi_enumerable, NULL},
      {"netlinkSubscribe", NULL, nl_subscribe, NULL, NULL, NULL, napi_enumerable, NULL},
      {"netlinkSetRef", NULL, nl_set_ref, NULL, NULL, NULL, napi_enumerable, NULL},
      {"netlinkUnsubscribe", NULL, nl_unsubscribe, NULL, NULL, NULL, napi_enumerable, NULL},
      {"netlinkSend", NULL, nl_send, NULL, NULL, NULL, napi_enumerable, NULL},
      {"netlinkReceive", NULL, nl_receive, NULL, NULL, NULL, napi_enumerable, NULL},
      {"peerUid", NULL, peer_uid, NULL, NULL, NULL, napi_enumerable, NULL},
      {"setChildSubreaper", NULL, set_child_subreaper, NULL, NULL, NULL, napi_enumerable, NULL},
      {"isChildSubreaper", NULL, is_child_subreaper, NULL, NULL, NULL, napi_enumerable, NULL},
      {"reapChild", NULL, reap_child, NULL, NULL, NULL, napi_enumerable, NULL},
      {"execve", NULL, exec_ve, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}


/*
 * ---- Spawning scripts (src/hooks/spawn-child.ts) -------------------------------------------
 * libuv's uv_spawn forks: the kernel copies the page tables of the whole daemon and the parent
 * waits until the child has exec'd, 2-4 ms for a 60-90 MB process, on the path from a takeover
 * to its upscript. posix_spawn (glibc: clone with CLONE_VM|CLONE_VFORK) shares the memory
 * instead. The child is not libuv's, so its end is watched through a pidfd and reaped here with
 * waitid() for that one pid, never with a wait for any child.
 */
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

typedef struct {
  uv_poll_t poll; /* first member: uv callbacks cast back from it */
  napi_env env;
  napi_ref callback;
  napi_async_context async;
  pid_t pid;
  int pidfd;
} spawn_watch;

static void spawn_free(uv_handle_t *handle) {
  spawn_watch *w = (spawn_watch *)handle;
  close(w->pidfd);
  free(w);
}

/* The child ended: reap it, then call back with (code, signal number); one is -1. */
static void spawn_on_exit(uv_poll_t *handle, int status, int events) {
  (void)status;
  (void)events;
  spawn_watch *w = (spawn_watch *)handle;
  siginfo_t si;
  memset(&si, 0, sizeof si);
  int r;
  do {
    r = waitid(P_PID, (id_t)w->pid, &si, WEXITED | WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r == 0 && si.si_pid == 0) return; /* readable before the exit was visible: wait on */
  int code = -1, sig = -1;
  if (r == 0 && si.si_code == CLD_EXITED) {
    code = si.si_status;
  } else if (r == 0) {
    sig = si.si_status; /* CLD_KILLED or CLD_DUMPED */
  }
  /* r < 0 (ECHILD): someone else reaped it; the status is lost, (-1, -1) says so. */
  uv_poll_stop(&w->poll);
  napi_env env = w->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) == napi_ok) {
    napi_value cb, this_arg, argv[2], result;
    napi_get_global(env, &this_arg);
    if (napi_get_reference_value(env, w->callback, &cb) == napi_ok && cb != NULL) {
      napi_create_int32(env, code, &argv[0]);
      napi_create_int32(env, sig, &argv[1]);
      if (napi_make_callback(env, w->async, this_arg, cb, 2, argv, &result) != napi_ok) {
        bool pending = false;
        napi_value exception;
        if (napi_is_exception_pending(env, &pending) == napi_ok && pending &&
            napi_get_and_clear_last_exception(env, &exception) == napi_ok)
          napi_fatal_exception(env, exception);
      }
    }
    napi_close_handle_scope(env, scope);
  }
  napi_delete_reference(env, w->callback);
  napi_async_destroy(env, w->async);
  uv_close((uv_handle_t *)&w->poll, spawn_free);
}

/* string_vector() and free_vector() are shared with execve above. */

static int pidfd_supported = -1;

/*
 * spawn(file, argv, envp, onExit) -> { pid, stdout, stderr }: runs `file` (searched in PATH
 * when it has no slash, as execvp) with argv (argv[0] included) and exactly the environment
 * envp ("NAME=value"), in a session and process group of its own, with default signal
 * dispositions and an empty signal mask, stdin on /dev/null, stdout and stderr on pipes whose
 * read ends are returned, and no other descriptor. onExit(code, signal) is called once it has
 * ended and been reaped. Throws with errno ENOENT, EACCES, ... when it cannot run, and ENOSYS
 * (before running anything) on a kernel without pidfd_open.
 */
static napi_value spawn_child(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  napi_valuetype type;
  size_t file_len = 0;
  if (argc < 4 || napi_typeof(env, argv[0], &type) != napi_ok || type != napi_string) {
    napi_throw_type_error(env, NULL, "file must be a string");
    return NULL;
  }
  if (napi_typeof(env, argv[3], &type) != napi_ok || type != napi_function) {
    napi_throw_type_error(env, NULL, "onExit must be a function");
    return NULL;
  }
  if (pidfd_supported < 0) {
    int fd = (int)syscall(SYS_pidfd_open, getpid(), 0);
    pidfd_supported = fd >= 0;
    if (fd >= 0) close(fd);
  }
  if (!pidfd_supported) {
    throw_errno(env, "pidfd_open", ENOSYS);
    return NULL;
  }
  uv_loop_t *loop;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok) return NULL;

  napi_get_value_string_utf8(env, argv[0], NULL, 0, &file_len);
  char *file = malloc(file_len + 1);
  char **args = NULL, **envp = NULL;
  int out[2] = {-1, -1}, err[2] = {-1, -1};
  int rc = 0, attr_ok = 0, actions_ok = 0;
  const char *failed = "spawn";
  posix_spawnattr_t attr;
  posix_spawn_file_actions_t actions;
  spawn_watch *w = NULL;
  pid_t pid = -1;
  napi_value result = NULL;

  if (!file) {
    rc = ENOMEM;
    goto fail;
  }
  napi_get_value_string_utf8(env, argv[0], file, file_len + 1, &file_len);
  if (!(args = string_vector(env, argv[1], "argv")) || !(envp = string_vector(env, argv[2], "envp"))) goto done;
  if (pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0) {
    rc = errno;
    failed = "pipe2";
    goto fail;
  }
  if ((rc = posix_spawnattr_init(&attr)) != 0) goto fail;
  attr_ok = 1;
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  /*
   * The daemon ignores SIGPIPE and may block signals: none of that is the script's business.
   * (glibc leaves its internal SIGCANCEL and SIGSETXID, 32 and 33, ignored in the child: their
   * handlers cannot run in a child sharing our memory; programs never see them through glibc.)
   */
  if ((rc = posix_spawnattr_setsigmask(&attr, &none)) != 0 ||
      (rc = posix_spawnattr_setsigdefault(&attr, &all)) != 0 ||
      (rc = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK |
                                                POSIX_SPAWN_SETSIGDEF)) != 0)
    goto fail;
  if ((rc = posix_spawn_file_actions_init(&actions)) != 0) goto fail;
  actions_ok = 1;
  if ((rc = posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)) != 0 ||
      (rc = posix_spawn_file_actions_adddup2(&actions, out[1], 1)) != 0 ||
      (rc = posix_spawn_file_actions_adddup2(&actions, err[1], 2)) != 0)
    goto fail;
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
  /* Raw and netlink sockets opened without CLOEXEC by dependencies stay ours. */
  if ((rc = posix_spawn_file_actions_addclosefrom_np(&actions, 3)) != 0) goto fail;
#endif
  w = calloc(1, sizeof *w);
  if (!w) {
    rc = ENOMEM;
    goto fail;
  }
  rc = posix_spawnp(&pid, file, &actions, &attr, args, envp);
  if (rc != 0) {
    failed = NULL;
    goto fail;
  }
  close(out[1]);
  close(err[1]);
  out[1] = err[1] = -1;
  /* Not reaped yet, so the pid cannot have been reused. */
  w->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
  w->pid = pid;
  w->env = env;
  napi_value name, resource;
  napi_create_string_utf8(env, "ucarp:spawn", NAPI_AUTO_LENGTH, &name);
  napi_create_object(env, &resource);
  if (w->pidfd < 0 || uv_poll_init(loop, &w->poll, w->pidfd) < 0) {
    /* Cannot watch it: it must not run unobserved. */
    rc = w->pidfd < 0 ? errno : EIO;
    kill(pid, SIGKILL);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
    }
    if (w->pidfd >= 0) close(w->pidfd);
    failed = "pidfd_open";
    goto fail;
  }
  napi_create_reference(env, argv[3], 1, &w->callback);
  napi_async_init(env, resource, name, &w->async);
  uv_poll_start(&w->poll, UV_READABLE, spawn_on_exit);
  w = NULL; /* owned by the loop now */

  napi_value v;
  napi_create_object(env, &result);
  napi_create_int32(env, pid, &v);
  napi_set_named_property(env, result, "pid", v);
  napi_create_int32(env, out[0], &v);
  napi_set_named_property(env, result, "stdout", v);
  napi_create_int32(env, err[0], &v);
  napi_set_named_property(env, result, "stderr", v);
  out[0] = err[0] = -1;
  goto done;

fail:
  if (failed) {
    throw_errno(env, failed, rc);
  } else {
    /* As Node words it: "spawn /path ENOENT". */
    char what[512];
    snprintf(what, sizeof what, "spawn %s", file);
    throw_errno(env, what, rc);
  }
done:
  if (out[0] >= 0) close(out[0]);
  if (out[1] >= 0) close(out[1]);
  if (err[0] >= 0) close(err[0]);
  if (err[1] >= 0) close(err[1]);
  if (attr_ok) posix_spawnattr_destroy(&attr);
  if (actions_ok) posix_spawn_file_actions_destroy(&actions);
  free(w);
  free(file);
  free_vector(args);
  free_vector(envp);
  return result;
}

static void define_spawn(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"spawn", NULL, spawn_child, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
