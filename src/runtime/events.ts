// What happens in the daemon, as one stream: transitions, tracker changes, address conflicts
// and restores, reloads. `ucarpctl events` follows it over the control socket, and the group
// set follows transitions to keep sync groups together. Publishing is synchronous and cheap:
// with no subscriber an event costs one object.
import { EventEmitter } from 'node:events';
import type { CarpState, TransitionReason } from '../engine/group';

interface GroupRef {
  group: string;
  vhid: number;
  interface: string;
}

export type DaemonEvent =
  | ({ type: 'transition'; from: CarpState; to: CarpState; reason: TransitionReason } & GroupRef)
  | { type: 'tracker'; tracker: string; failed: boolean; value: number; output: string }
  | ({ type: 'conflict'; address: string; removed: boolean } & GroupRef)
  | ({ type: 'restore'; address: string } & GroupRef)
  | { type: 'reload'; ok: boolean; line: string };

/** An event as it goes out: with the wall-clock time it happened. */
export type StampedEvent = DaemonEvent & { time: string };

export class EventBus extends EventEmitter<{ event: [StampedEvent] }> {
  publish(ev: DaemonEvent): void {
    if (this.listenerCount('event') === 0) return;
    this.emit('event', { ...ev, time: new Date().toISOString() });
  }
}
