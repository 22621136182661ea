/*
 * Raw IP sockets for one protocol number (112: CARP and VRRP), IPv4 or IPv6, bound to one
 * interface, read and written in batches (docs/architecture.md, "The edges").
 *
 * Receiving: on readiness the socket is drained with recvmmsg() into slots of one Buffer that
 * JavaScript allocated once and shares with us, each packet's facts in an Int32Array beside
 * it, and JavaScript is called once per batch with the count, not once per packet. IPv4
 * packets come with their IP header (the caller reads source, destination and TTL there);
 * IPv6 ones without, so the source, the destination, the hop limit and the arrival ifindex
 * come from the address and the ancillary data (IPV6_RECVPKTINFO, IPV6_RECVHOPLIMIT).
 *
 * Sending: JavaScript writes the packets of one turn into a send arena with their facts in
 * the same layout, and one call sends them all with sendmmsg(), returning an errno per packet.
 * IPv4 packets carry their own header (IP_HDRINCL: TTL 255, TOS, DF and the group's source as
 * ucarp writes them, docs/protocol.md §2); IPv6 ones their source in IPV6_PKTINFO. Either way
 * groups with different sources share the socket without a setsockopt() per send.
 */
#include "common.h"

#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Int32 words per packet in the metadata arrays: the layout of src/net/raw-batch.ts. */
#define RAW_META_STRIDE 12
#define M_LENGTH 0   /* receive: bytes received; send: length */
#define M_HOPS 1     /* receive: IPv6 hop limit (-1 for IPv4); send: offset in the arena */
#define M_IFINDEX 2  /* IPv6: arrival interface / outgoing interface */
#define M_FLAGS 3    /* receive: 1 when truncated to the slot; send (IPv6): hop limit, 0 the socket's */
#define M_SRC 4      /* 16 bytes: IPv6 source (receive), source or zeros (send) */
#define M_DST 8      /* 16 bytes: IPv6 destination (receive), destination (send; IPv4: 4 bytes) */
#define RAW_MAX_SLOTS 256
/* recvmmsg() calls per wake-up: one busy socket cannot hold the loop for more than this. */
#define RAW_BATCHES_PER_WAKEUP 4
#define RAW_SEND_CHUNK 64
#define RAW_CONTROL (CMSG_SPACE(sizeof(struct in6_pktinfo)) + CMSG_SPACE(sizeof(int)))

typedef struct {
  watch w; /* first member: the watch, and so the poll handle, cast back to it */
  int family;
  int slots;
  size_t slot_size;
  unsigned char *rx;
  int32_t *meta;
  napi_ref rx_ref;
  napi_ref meta_ref;
  struct mmsghdr msgs[RAW_MAX_SLOTS];
  struct iovec iovs[RAW_MAX_SLOTS];
  struct sockaddr_in6 names[RAW_MAX_SLOTS];
  unsigned char controls[RAW_MAX_SLOTS][RAW_CONTROL];
} raw_sock;

static const char RAW_WHAT[] = "raw socket";

static void raw_release(watch *w) {
  raw_sock *s = (raw_sock *)w;
  if (s->rx_ref) napi_delete_reference(w->env, s->rx_ref);
  if (s->meta_ref) napi_delete_reference(w->env, s->meta_ref);
  s->rx_ref = s->meta_ref = NULL;
}

/* (count, errno): a batch; (0, errno) a failed receive; (-1, errno) the socket closed. */
static void raw_deliver(raw_sock *s, int count, int err) {
  napi_env env = s->w.env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value argv[2];
  napi_create_int32(env, count, &argv[0]);
  napi_create_int32(env, err, &argv[1]);
  watch_call(&s->w, 2, argv);
  napi_close_handle_scope(env, scope);
}

static void raw_on_poll(uv_poll_t *handle, int status, int events);

static void raw_on_error(raw_sock *s, int status) {
  /* libuv stops the handle on POLLERR; reading SO_ERROR clears the error, then poll again. */
  int err = 0;
  socklen_t len = sizeof err;
  if (getsockopt(s->w.fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err == 0) err = -status;
  raw_deliver(s, 0, err);
  if (s->w.closed) return;
  int rc = uv_poll_start(&s->w.poll, UV_READABLE, raw_on_poll);
  if (rc < 0) raw_deliver(s, -1, -rc);
}

static void raw_on_poll(uv_poll_t *handle, int status, int events) {
  (void)events;
  raw_sock *s = (raw_sock *)handle;
  if (s->w.closed) return;
  if (status < 0) {
    raw_on_error(s, status);
    return;
  }
  for (int batch = 0; batch < RAW_BATCHES_PER_WAKEUP && !s->w.closed; batch++) {
    for (int i = 0; i < s->slots; i++) {
      s->msgs[i].msg_hdr.msg_namelen = sizeof s->names[i];
      s->msgs[i].msg_hdr.msg_controllen = s->family == AF_INET6 ? RAW_CONTROL : 0;
      s->msgs[i].msg_hdr.msg_flags = 0;
    }
    int n = recvmmsg(s->w.fd, s->msgs, (unsigned)s->slots, MSG_DONTWAIT, NULL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) raw_deliver(s, 0, errno);
      return;
    }
    for (int i = 0; i < n; i++) {
      int32_t *m = s->meta + (size_t)i * RAW_META_STRIDE;
      struct msghdr *h = &s->msgs[i].msg_hdr;
      size_t got = s->msgs[i].msg_len;
      m[M_LENGTH] = (int32_t)(got > s->slot_size ? s->slot_size : got);
      m[M_FLAGS] = (h->msg_flags & MSG_TRUNC) ? 1 : 0;
      m[M_HOPS] = -1;
      m[M_IFINDEX] = 0;
      memset(m + M_SRC, 0, 32);
      if (s->family != AF_INET6) continue;
      memcpy(m + M_SRC, &s->names[i].sin6_addr, 16);
      for (struct cmsghdr *c = CMSG_FIRSTHDR(h); c != NULL; c = CMSG_NXTHDR(h, c)) {
        if (c->cmsg_level != IPPROTO_IPV6) continue;
        if (c->cmsg_type == IPV6_PKTINFO) {
          struct in6_pktinfo pi;
          memcpy(&pi, CMSG_DATA(c), sizeof pi);
          memcpy(m + M_DST, &pi.ipi6_addr, 16);
          m[M_IFINDEX] = (int32_t)pi.ipi6_ifindex;
        } else if (c->cmsg_type == IPV6_HOPLIMIT) {
          int hops;
          memcpy(&hops, CMSG_DATA(c), sizeof hops);
          m[M_HOPS] = hops;
        }
      }
    }
    if (n > 0) raw_deliver(s, n, 0);
    /* Fewer than asked for: the queue is empty, no need for the call that says so. */
    if (n < s->slots) return;
  }
}

static int setopt(int fd, int level, int name, const void *value, socklen_t len, const char **what,
                  const char *label) {
  if (setsockopt(fd, level, name, value, len) < 0) {
    *what = label;
    return -1;
  }
  return 0;
}

/* Sets the options of a fresh socket; returns -1 with *what naming the refused one. */
static int raw_configure(int fd, int family, const char *ifname, size_t ifname_len, const char **what) {
  int one = 1, zero = 0, hops = 255;
  if (setopt(fd, SOL_SOCKET, SO_BINDTODEVICE, ifname, (socklen_t)ifname_len, what, "SO_BINDTODEVICE"))
    return -1;
  if (family == AF_INET)
    return setopt(fd, IPPROTO_IP, IP_HDRINCL, &one, sizeof one, what, "IP_HDRINCL") ||
                   /* Our multicasts must not come back to any local socket (ucarp disables the
                      loop too); broadcasts are looped regardless: the own-source filter's job. */
                   setopt(fd, IPPROTO_IP, IP_MULTICAST_LOOP, &zero, sizeof zero, what, "IP_MULTICAST_LOOP") ||
                   /* Only the groups joined on this socket, not every group any socket joined. */
                   setopt(fd, IPPROTO_IP, IP_MULTICAST_ALL, &zero, sizeof zero, what, "IP_MULTICAST_ALL") ||
                   /* --nomcast sends to 255.255.255.255, refused (EACCES) without it. */
                   setopt(fd, SOL_SOCKET, SO_BROADCAST, &one, sizeof one, what, "SO_BROADCAST")
               ? -1
               : 0;
  /* Hop limit 255 both ways: receivers drop anything else (docs/protocol.md §21). */
  return setopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_HOPS, &hops, sizeof hops, what, "IPV6_MULTICAST_HOPS") ||
                 setopt(fd, IPPROTO_IPV6, IPV6_UNICAST_HOPS, &hops, sizeof hops, what, "IPV6_UNICAST_HOPS") ||
                 setopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_LOOP, &zero, sizeof zero, what, "IPV6_MULTICAST_LOOP") ||
                 setopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof one, what, "IPV6_RECVPKTINFO") ||
                 setopt(fd, IPPROTO_IPV6, IPV6_RECVHOPLIMIT, &one, sizeof one, what, "IPV6_RECVHOPLIMIT") ||
                 setopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_ALL, &zero, sizeof zero, what, "IPV6_MULTICAST_ALL")
             ? -1
             : 0;
}

static unsigned char *buffer_arg(napi_env env, napi_value value, size_t *length, const char *name) {
  bool is_buffer = false;
  void *data = NULL;
  if (napi_is_buffer(env, value, &is_buffer) != napi_ok || !is_buffer ||
      napi_get_buffer_info(env, value, &data, length) != napi_ok) {
    char msg[64];
    snprintf(msg, sizeof msg, "%s must be a Buffer", name);
    napi_throw_type_error(env, NULL, msg);
    return NULL;
  }
  return data;
}

/*
 * rawOpen(family 4|6, ifname, protocol, rx, meta, onBatch, rcvbuf) → handle. rx (Buffer) and
 * meta (Int32Array of RAW_META_STRIDE words per slot) are the receive slots, kept until close;
 * onBatch(count, errno) is called once per recvmmsg(). rcvbuf (bytes, 0: the default) is the
 * receive buffer, forced past net.core.rmem_max when we may. With rx, meta and onBatch null the
 * socket only sends. A receiving socket keeps the process alive until rawClose.
 */
static napi_value raw_open(napi_env env, napi_callback_info info) {
  napi_value argv[7];
  if (call_args(env, info, 7, argv, "rawOpen(family, ifname, protocol, rx, meta, onBatch, rcvbuf)") < 0) return NULL;
  const size_t argc = 7;
  int32_t fam = int_arg(env, argv, argc, 0, "family");
  if (fam < 0) return NULL;
  if (fam != 4 && fam != 6) {
    napi_throw_range_error(env, NULL, "family must be 4 or 6");
    return NULL;
  }
  int family = fam == 4 ? AF_INET : AF_INET6;
  char ifname[IFNAMSIZ + 1];
  size_t ifname_len = 0;
  napi_valuetype type;
  if (napi_typeof(env, argv[1], &type) != napi_ok || type != napi_string ||
      napi_get_value_string_utf8(env, argv[1], ifname, sizeof ifname, &ifname_len) != napi_ok ||
      ifname_len == 0 || ifname_len >= IFNAMSIZ || strlen(ifname) != ifname_len) {
    napi_throw_type_error(env, NULL, "ifname must be an interface name");
    return NULL;
  }
  int32_t protocol = int_arg(env, argv, argc, 2, "protocol");
  if (protocol < 0) return NULL;
  int32_t rcvbuf = int_arg(env, argv, argc, 6, "rcvbuf");
  if (rcvbuf < 0) return NULL;
  if (napi_typeof(env, argv[5], &type) != napi_ok) return NULL;
  int listen = type == napi_function;
  if (!listen && type != napi_null) {
    napi_throw_type_error(env, NULL, "onBatch must be a function or null");
    return NULL;
  }
  unsigned char *rx = NULL;
  int32_t *meta = NULL;
  size_t rx_len = 0, meta_len = 0;
  if (listen) {
    if (!(rx = buffer_arg(env, argv[3], &rx_len, "rx"))) return NULL;
    if (!(meta = typed_array_arg(env, argv[4], napi_int32_array, &meta_len, "meta"))) return NULL;
    size_t slots = meta_len / RAW_META_STRIDE;
    if (slots == 0 || slots > RAW_MAX_SLOTS || rx_len / slots < 64) {
      napi_throw_range_error(env, NULL, "rx and meta must hold 1..256 slots of at least 64 bytes");
      return NULL;
    }
  }
  uv_loop_t *loop;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok) return NULL;

  int fd = socket(family, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, protocol);
  if (fd < 0) {
    throw_errno(env, family == AF_INET ? "socket(AF_INET, SOCK_RAW)" : "socket(AF_INET6, SOCK_RAW)", errno);
    return NULL;
  }
  const char *what = NULL;
  if (raw_configure(fd, family, ifname, ifname_len, &what) < 0) {
    int err = errno;
    close(fd);
    char msg[64];
    snprintf(msg, sizeof msg, "setsockopt(%s)", what);
    throw_errno(env, msg, err);
    return NULL;
  }
  if (listen && rcvbuf > 0 && setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf) < 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  if (!listen) {
    /* A send-only socket: nothing may queue up in a buffer nobody reads. */
    int rcv = 0;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof rcv);
    shutdown(fd, SHUT_RD);
  }
  raw_sock *s = calloc(1, sizeof *s);
  if (!s) {
    close(fd);
    throw_errno(env, "rawOpen", ENOMEM);
    return NULL;
  }
  s->w.env = env;
  s->w.fd = fd;
  s->w.release = raw_release;
  s->family = family;
  if (listen) {
    s->slots = (int)(meta_len / RAW_META_STRIDE);
    s->slot_size = rx_len / (size_t)s->slots;
    s->rx = rx;
    s->meta = meta;
    for (int i = 0; i < s->slots; i++) {
      s->iovs[i].iov_base = rx + (size_t)i * s->slot_size;
      s->iovs[i].iov_len = s->slot_size;
      struct msghdr *h = &s->msgs[i].msg_hdr;
      h->msg_name = &s->names[i];
      h->msg_iov = &s->iovs[i];
      h->msg_iovlen = 1;
      h->msg_control = family == AF_INET6 ? s->controls[i] : NULL;
    }
    /* The memory stays ours as long as JavaScript cannot collect its owners. */
    if (napi_create_reference(env, argv[3], 1, &s->rx_ref) != napi_ok ||
        napi_create_reference(env, argv[4], 1, &s->meta_ref) != napi_ok) {
      watch_stop(&s->w);
      return NULL;
    }
    if (watch_start(&s->w, loop, argv[5], family == AF_INET ? "ucarp:raw4" : "ucarp:raw6", raw_on_poll) < 0)
      return NULL;
  }
  return watch_box(env, &s->w);
}

/* rawMembership(handle, group (4 or 16 bytes), local (4 bytes) | null, ifindex, join) */
static napi_value raw_membership(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  if (call_args(env, info, 5, argv, "rawMembership(handle, group, local, ifindex, join)") < 0) return NULL;
  const size_t argc = 5;
  raw_sock *s = (raw_sock *)watch_arg(env, argv[0], RAW_WHAT, 0);
  if (!s) return NULL;
  size_t glen = 0, llen = 0;
  unsigned char *group = buffer_arg(env, argv[1], &glen, "group");
  if (!group) return NULL;
  unsigned char *local = NULL;
  napi_valuetype type;
  if (napi_typeof(env, argv[2], &type) != napi_ok) return NULL;
  if (type != napi_null && !(local = buffer_arg(env, argv[2], &llen, "local"))) return NULL;
  int32_t ifindex = int_arg(env, argv, argc, 3, "ifindex");
  if (ifindex < 0) return NULL;
  bool join = false;
  if (napi_get_value_bool(env, argv[4], &join) != napi_ok) {
    napi_throw_type_error(env, NULL, "join must be a boolean");
    return NULL;
  }
  int rc;
  if (s->family == AF_INET) {
    if (glen != 4 || (local && llen != 4)) {
      napi_throw_range_error(env, NULL, "IPv4 group and local address must be 4 bytes");
      return NULL;
    }
    struct ip_mreqn mreq;
    memset(&mreq, 0, sizeof mreq);
    memcpy(&mreq.imr_multiaddr, group, 4);
    if (local) memcpy(&mreq.imr_address, local, 4);
    mreq.imr_ifindex = ifindex;
    rc = setsockopt(s->w.fd, IPPROTO_IP, join ? IP_ADD_MEMBERSHIP : IP_DROP_MEMBERSHIP, &mreq, sizeof mreq);
  } else {
    if (glen != 16) {
      napi_throw_range_error(env, NULL, "IPv6 group must be 16 bytes");
      return NULL;
    }
    struct ipv6_mreq mreq;
    memcpy(&mreq.ipv6mr_multiaddr, group, 16);
    mreq.ipv6mr_interface = (unsigned)ifindex;
    rc = setsockopt(s->w.fd, IPPROTO_IPV6, join ? IPV6_JOIN_GROUP : IPV6_LEAVE_GROUP, &mreq, sizeof mreq);
  }
  if (rc < 0) {
    const char *name = s->family == AF_INET ? (join ? "IP_ADD_MEMBERSHIP" : "IP_DROP_MEMBERSHIP")
                                            : (join ? "IPV6_JOIN_GROUP" : "IPV6_LEAVE_GROUP");
    throw_errno(env, name, errno);
  }
  return NULL;
}

/*
 * rawSend(handle, arena, meta, count, results) → packets sent. Packet i is arena[offset,
 * offset + length) with its facts at meta[i × RAW_META_STRIDE]; results[i] gets 0 or the errno
 * that refused it. sendmmsg() stops at the first refusal and loses its errno when packets went
 * before it, so the refused packet is tried alone once more to learn why, and the rest go on.
 */
static napi_value raw_send(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  if (call_args(env, info, 5, argv, "rawSend(handle, arena, meta, count, results)") < 0) return NULL;
  const size_t argc = 5;
  raw_sock *s = (raw_sock *)watch_arg(env, argv[0], RAW_WHAT, 0);
  if (!s) return NULL;
  size_t arena_len = 0, meta_len = 0, results_len = 0;
  unsigned char *arena = buffer_arg(env, argv[1], &arena_len, "arena");
  if (!arena) return NULL;
  int32_t *meta = typed_array_arg(env, argv[2], napi_int32_array, &meta_len, "meta");
  if (!meta) return NULL;
  int32_t count = int_arg(env, argv, argc, 3, "count");
  if (count < 0) return NULL;
  int32_t *results = typed_array_arg(env, argv[4], napi_int32_array, &results_len, "results");
  if (!results) return NULL;
  if ((size_t)count * RAW_META_STRIDE > meta_len || (size_t)count > results_len) {
    napi_throw_range_error(env, NULL, "count exceeds meta or results");
    return NULL;
  }
  for (int32_t i = 0; i < count; i++) {
    const int32_t *m = meta + (size_t)i * RAW_META_STRIDE;
    if (m[M_HOPS] < 0 || m[M_LENGTH] < 0 || (size_t)m[M_HOPS] + (size_t)m[M_LENGTH] > arena_len) {
      napi_throw_range_error(env, NULL, "a packet lies outside the arena");
      return NULL;
    }
  }

  struct mmsghdr msgs[RAW_SEND_CHUNK];
  struct iovec iovs[RAW_SEND_CHUNK];
  struct sockaddr_in6 names[RAW_SEND_CHUNK];
  union {
    struct cmsghdr align;
    unsigned char buf[CMSG_SPACE(sizeof(struct in6_pktinfo)) + CMSG_SPACE(sizeof(int))];
  } controls[RAW_SEND_CHUNK];
  int32_t sent = 0;
  int32_t i = 0;
  while (i < count) {
    int n = count - i < RAW_SEND_CHUNK ? count - i : RAW_SEND_CHUNK;
    memset(msgs, 0, sizeof msgs[0] * (size_t)n);
    for (int j = 0; j < n; j++) {
      const int32_t *m = meta + (size_t)(i + j) * RAW_META_STRIDE;
      iovs[j].iov_base = arena + m[M_HOPS];
      iovs[j].iov_len = (size_t)m[M_LENGTH];
      struct msghdr *h = &msgs[j].msg_hdr;
      h->msg_iov = &iovs[j];
      h->msg_iovlen = 1;
      h->msg_name = &names[j];
      memset(&names[j], 0, sizeof names[j]);
      if (s->family == AF_INET) {
        struct sockaddr_in *to = (struct sockaddr_in *)&names[j];
        to->sin_family = AF_INET;
        memcpy(&to->sin_addr, m + M_DST, 4);
        h->msg_namelen = sizeof *to;
        continue;
      }
      names[j].sin6_family = AF_INET6;
      memcpy(&names[j].sin6_addr, m + M_DST, 16);
      names[j].sin6_scope_id = (uint32_t)m[M_IFINDEX];
      h->msg_namelen = sizeof names[j];
      struct in6_pktinfo pi;
      memset(&pi, 0, sizeof pi);
      memcpy(&pi.ipi6_addr, m + M_SRC, 16);
      pi.ipi6_ifindex = (unsigned)m[M_IFINDEX];
      memset(&controls[j], 0, sizeof controls[j]);
      h->msg_control = controls[j].buf;
      h->msg_controllen = CMSG_SPACE(sizeof pi);
      struct cmsghdr *c = CMSG_FIRSTHDR(h);
      c->cmsg_level = IPPROTO_IPV6;
      c->cmsg_type = IPV6_PKTINFO;
      c->cmsg_len = CMSG_LEN(sizeof pi);
      memcpy(CMSG_DATA(c), &pi, sizeof pi);
      if (m[M_FLAGS] > 0) {
        /* Another hop limit than the socket's 255: only tests forging packets ask for one. */
        int hops = m[M_FLAGS];
        h->msg_controllen += CMSG_SPACE(sizeof hops);
        c = CMSG_NXTHDR(h, c);
        c->cmsg_level = IPPROTO_IPV6;
        c->cmsg_type = IPV6_HOPLIMIT;
        c->cmsg_len = CMSG_LEN(sizeof hops);
        memcpy(CMSG_DATA(c), &hops, sizeof hops);
      }
    }
    int r = sendmmsg(s->w.fd, msgs, (unsigned)n, 0);
    if (r < 0) {
      if (errno == EINTR) continue;
      results[i++] = errno;
      continue;
    }
    for (int j = 0; j < r; j++) results[i + j] = 0;
    sent += r;
    i += r;
  }
  napi_value result;
  napi_create_int32(env, sent, &result);
  return result;
}

static napi_value raw_close(napi_env env, napi_callback_info info) { return watch_close(env, info, RAW_WHAT); }

/* errnoMessage(errno): strerror(), for the errnos rawSend reports. */
static napi_value errno_message(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  int32_t err = int_arg(env, argv, argc, 0, "errno");
  if (err < 0) return NULL;
  napi_value result;
  napi_create_string_utf8(env, strerror(err), NAPI_AUTO_LENGTH, &result);
  return result;
}

void define_rawsock(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"rawOpen", NULL, raw_open, NULL, NULL, NULL, napi_enumerable, NULL},
      {"rawMembership", NULL, raw_membership, NULL, NULL, NULL, napi_enumerable, NULL},
      {"rawSend", NULL, raw_send, NULL, NULL, NULL, napi_enumerable, NULL},
      {"rawClose", NULL, raw_close, NULL, NULL, NULL, napi_enumerable, NULL},
      {"errnoMessage", NULL, errno_message, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
}
