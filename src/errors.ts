// Every error this project throws on purpose: one base class, one subclass per condition, each
// with a fixed `code`. Programs (and metrics labels) branch on `code`; messages are for people.

export abstract class UcarpError extends Error {
  abstract readonly code: string;
  override get name(): string {
    return this.constructor.name;
  }
}

/** A bug: a module was used against its contract. */
export class InternalError extends UcarpError {
  readonly code = 'ERR_INTERNAL';
}

/** A value handed to a function is malformed (not an address, a bad prefix length…). */
export class InvalidArgumentError extends UcarpError {
  readonly code = 'ERR_INVALID_ARGUMENT';
}

/** A command-line or demo-file problem the user can fix. */
export class UsageError extends UcarpError {
  readonly code = 'ERR_USAGE';
}

export class InterfaceNotFoundError extends UcarpError {
  readonly code = 'ERR_INTERFACE_NOT_FOUND';
  constructor(
    readonly ifname: string,
    message = `no interface named ${ifname}`,
  ) {
    super(message);
  }
}

/** Two groups want the same (destination, vhid) on one interface. */
export class VhidInUseError extends UcarpError {
  readonly code = 'ERR_VHID_IN_USE';
}

/** An operation on something already closed (a socket, a sender). */
export class ClosedError extends UcarpError {
  readonly code = 'ERR_CLOSED';
}

/** start() called twice on something that starts once. */
export class AlreadyStartedError extends UcarpError {
  readonly code = 'ERR_ALREADY_STARTED';
}

/**
 * The kernel refused a netlink request. `errno` is its symbolic name (EEXIST, ENODEV…), the
 * thing callers compare.
 */
export class KernelError extends UcarpError {
  readonly code = 'ERR_KERNEL';
  constructor(
    readonly errno: string,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** The control socket path is taken (another daemon answers, or it is not a socket). */
export class ControlSocketBusyError extends UcarpError {
  readonly code = 'ERR_CONTROL_SOCKET_BUSY';
}

/** An endpoint (metrics) could not be opened. */
export class ListenError extends UcarpError {
  readonly code = 'ERR_LISTEN';
}

/** A step of a test host or the demo did not go as required. */
export class LabError extends UcarpError {
  readonly code = 'ERR_LAB';
}

export function isUcarpError(e: unknown, code?: string): e is UcarpError {
  return e instanceof UcarpError && (code === undefined || e.code === code);
}

/** A program could not be started; `errno` is the symbolic name (ENOENT, EACCES…). */
export class SpawnError extends UcarpError {
  readonly code = 'ERR_SPAWN';
  constructor(
    readonly errno: string,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/**
 * A configuration problem lies outside the pieces a reload re-parsed (src/config/incremental.ts):
 * the file is loaded whole instead.
 */
export class NotInSliceError extends UcarpError {
  readonly code = 'ERR_NOT_IN_SLICE';
}

/** The message of whatever was thrown (an Error or anything else), for a log line or a wrapping error. */
export function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
