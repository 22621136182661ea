// Typed access to the project's N-API addon (native/*.c): raw IP sockets read and written in
// batches (recvmmsg, sendmmsg), AF_PACKET sockets for gratuitous ARP, the systemd notification
// datagram, a netlink multicast subscription that survives receive-buffer overruns, and the
// child-subreaper flag with a waitpid() for one given child, execve() for `ucarpctl restart`, and posix_spawn for scripts; none of which Node (20)
// or our dependencies do safely (or cheaply). Also the per-packet part of the CARP digest with
// the CPU's SHA extensions, where it has them.
import path from 'node:path';
import type { DigestKernel } from './protocol/hmac-sha1';

/** Opaque handle of a netlink subscription. */
export type NetlinkSubscription = { readonly __brand: 'NetlinkSubscription' };

/**
 * Called with one received datagram (errno 0), or with data null and an errno: ENOBUFS or
 * EMSGSIZE mean notifications were lost and the subscription goes on; any other errno means
 * it stopped and must be replaced.
 */
export type NetlinkListener = (data: Buffer | null, errno: number) => void;

/** Opaque handle of a raw IP socket (rawsock.c). */
export type RawSocketHandle = { readonly __brand: 'RawSocket' };

/**
 * Called once per recvmmsg() with the number of packets now in the receive slots (count > 0,
 * errno 0); with count 0 and an errno when a receive failed (the socket stays open); with
 * count -1 when the socket can no longer be watched (it must be closed).
 */
export type RawBatchListener = (count: number, errno: number) => void;

export interface UcarpNative {
  /** Opens an AF_PACKET/SOCK_RAW socket bound to the interface; it never receives. */
  packetOpen(ifindex: number): number;
  /** Sends one complete Ethernet frame (padded to 60 bytes if shorter). */
  packetSend(fd: number, frame: Buffer): void;
  /** The frames in order through sendmmsg(); throws at the first refused one, the earlier ones sent. */
  packetSendMany(fd: number, frames: readonly Buffer[]): void;
  close(fd: number): void;
  /** Sends `state` to $NOTIFY_SOCKET; false when the variable is unset. */
  sdNotify(state: string): boolean;
  /**
   * NETLINK_ROUTE socket bound to the legacy group bitmask `groups` (RTMGRP_*), receive buffer
   * `rcvbuf` bytes (0: default). Does not keep the process alive until netlinkSetRef(h, true).
   */
  netlinkSubscribe(groups: number, rcvbuf: number, listener: NetlinkListener): NetlinkSubscription;
  netlinkSetRef(subscription: NetlinkSubscription, ref: boolean): void;
  /** Closes the socket; idempotent. */
  netlinkUnsubscribe(subscription: NetlinkSubscription): void;
  /**
   * sendto() of one datagram of requests to the kernel on the subscription's socket, at once
   * (the kernel handles it within the call; answers arrive through the listener). Throws with
   * `code` EAGAIN, ENOBUFS… when it cannot be sent, EBADF after netlinkUnsubscribe.
   */
  netlinkSend(subscription: NetlinkSubscription, datagram: Buffer): void;
  /**
   * One datagram already queued on the subscription's socket, read now without waiting (the
   * kernel queues the answers to netlinkSend within that call); null when none is. Throws with
   * `code` ENOBUFS when datagrams were lost, EMSGSIZE for one larger than 64 KiB.
   */
  netlinkReceive(subscription: NetlinkSubscription): Buffer | null;
  /** The uid of the peer of a connected AF_UNIX socket (SO_PEERCRED). */
  peerUid(fd: number): number;
  /** prctl(PR_SET_CHILD_SUBREAPER, 1): orphaned descendants are re-parented to this process. */
  setChildSubreaper(): void;
  isChildSubreaper(): boolean;
  /**
   * waitpid(pid, WNOHANG) for that one child: 1 reaped now, 0 still running, -1 not our child.
   * Only for children libuv did not spawn (adopted orphans), or libuv loses their exit status.
   */
  reapChild(pid: number): -1 | 0 | 1;
  /**
   * Replaces the process image, keeping the pid: every descriptor above stderr is marked
   * close-on-exec and the signal mask emptied first. Returns only by throwing (errno, code).
   */
  execve(file: string, argv: readonly string[], env: readonly string[]): never;
  /**
   * SOCK_RAW of `family` for `protocol`, bound to `ifname`. IPv4: IP_HDRINCL, multicast loop
   * and IP_MULTICAST_ALL off, SO_BROADCAST on. IPv6: hop limit 255 for unicast and multicast,
   * multicast loop and IPV6_MULTICAST_ALL off, IPV6_RECVPKTINFO and IPV6_RECVHOPLIMIT on. With
   * a listener, packets are read with recvmmsg() into the slots of `rx` (meta: RAW_META_STRIDE
   * words per slot, src/net/raw-batch.ts) and the socket keeps the process alive until
   * rawClose; with nulls it only sends. `rcvbuf`: the receive buffer in bytes (0: default),
   * past net.core.rmem_max with CAP_NET_ADMIN.
   */
  rawOpen(
    family: 4 | 6,
    ifname: string,
    protocol: number,
    rx: Buffer | null,
    meta: Int32Array | null,
    listener: RawBatchListener | null,
    rcvbuf: number,
  ): RawSocketHandle;
  /** IP_ADD/DROP_MEMBERSHIP (ip_mreqn with `local`) or IPV6_JOIN/LEAVE_GROUP of `group` on ifindex. */
  rawMembership(
    sock: RawSocketHandle,
    group: Buffer,
    local: Buffer | null,
    ifindex: number,
    join: boolean,
  ): void;
  /**
   * sendmmsg() of the first `count` packets described in `meta` (in `arena`); results[i] is 0
   * or the errno that refused packet i. Returns how many were sent.
   */
  rawSend(sock: RawSocketHandle, arena: Buffer, meta: Int32Array, count: number, results: Int32Array): number;
  /** Closes the socket; idempotent. */
  rawClose(sock: RawSocketHandle): void;
  /** strerror(errno). */
  errnoMessage(errno: number): string;
  /**
   * posix_spawn of `file` (PATH searched without a slash) with exactly `argv` (argv[0]
   * included) and `envp`, in its own session, default signal dispositions, stdin /dev/null,
   * stdout and stderr on pipes whose read ends are returned, no other descriptor. `onExit` gets
   * (code, -1) or (-1, signal number) once the child is reaped, (-1, -1) if someone else reaped
   * it. Throws with `code` ENOENT, EACCES… when it cannot run, ENOSYS without pidfd_open.
   */
  /**
   * The per-packet part of the CARP digest over a PreparedDigest's prep (native/digest.c);
   * only on a CPU with the SHA extensions, undefined elsewhere.
   */
  carpDigest?: DigestKernel;
  spawn(
    file: string,
    argv: readonly string[],
    envp: readonly string[],
    onExit: (code: number, signal: number) => void,
  ): { pid: number; stdout: number; stderr: number };
}

/** Compiled location: dist/src/native.js, addon: native/build/Release/. */
export const NATIVE_ADDON_PATH = path.resolve(__dirname, '../../native/build/Release/ucarp_native.node');

let loaded: UcarpNative | undefined;

/** Loads the addon on first use so that modules importing this file stay usable without it. */
export function native(): UcarpNative {
  if (!loaded) {
    loaded = require(NATIVE_ADDON_PATH) as UcarpNative;
  }
  return loaded;
}

/**
 * systemd readiness protocol (sd_notify(3)): e.g. 'READY=1', 'RELOADING=1\nMONOTONIC_USEC=…',
 * 'STOPPING=1', 'STATUS=…'. Returns false when not started by systemd with Type=notify.
 */
export function sdNotify(state: string): boolean {
  return native().sdNotify(state);
}
