// A slowloris client for the control socket: it sends the start of a request and then one
// more byte every `everyMs`, never a newline, and reconnects shortly after being dropped, as a
// determined local attacker (or a wedged agent in a retry loop) would.
import net from 'node:net';

/** Pause before reconnecting, so that a refused client does not spin. */
const RECONNECT_MS = 100;

export class Trickler {
  connects = 0;
  drops = 0;
  private sock: net.Socket | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(
    private readonly path: string,
    private readonly everyMs: number,
  ) {
    this.connect();
  }

  private connect(): void {
    const s = net.connect(this.path);
    this.sock = s;
    s.on('connect', () => {
      this.connects++;
      s.write('{');
      this.timer = setInterval(() => s.write(' '), this.everyMs);
    });
    s.on('data', () => undefined);
    s.on('error', () => undefined);
    s.on('close', () => {
      clearInterval(this.timer);
      if (this.stopped) return;
      this.drops++;
      setTimeout(() => this.stopped || this.connect(), RECONNECT_MS);
    });
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
    this.sock?.destroy();
  }
}
