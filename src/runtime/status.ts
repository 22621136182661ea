import { formatRejects, totalRejects } from './counters';
import type { GroupRuntime } from './group-runtime';

/** ucarp's SIGUSR1 line, plus the counters ucarp does not keep. */
export function statusLine(g: GroupRuntime): string {
  const s = g.status();
  const rejects = totalRejects(s.stats.rejects);
  return (
    `${s.state} on ${s.interface} id ${s.vhid}` +
    ` sent=${s.stats.sent} received=${s.stats.received} rejects=${rejects}` +
    (rejects > 0 ? ` (${formatRejects(s.stats.rejects)})` : '')
  );
}
