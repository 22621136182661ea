/**
 * The one's-complement sum of buf[start, end) as 16-bit big-endian words, not yet folded:
 * sums of several pieces add up and fold once (a pseudo-header without a buffer of its own).
 * Every piece but the last must have an even length.
 */
export function onesSum(buf: Uint8Array, start = 0, end = buf.length): number {
  let sum = 0;
  let i = start;
  for (; i + 1 < end; i += 2) sum += (buf[i] << 8) | buf[i + 1];
  if (i < end) sum += buf[i] << 8;
  return sum;
}

/** The 16-bit value to store big-endian for an unfolded one's-complement sum (onesSum). */
export function foldChecksum(sum: number): number {
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  return ~sum & 0xffff;
}

/** RFC 1071 Internet checksum of buf[start, end), as the 16-bit value to store big-endian. */
export function internetChecksum(buf: Uint8Array, start = 0, end = buf.length): number {
  return foldChecksum(onesSum(buf, start, end));
}
