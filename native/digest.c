/*
 * The per-packet part of the CARP digest, HMAC-SHA1(key, prefix ‖ counter) (docs/protocol.md
 * §5): every host computes one for each advertisement it sends and each it hears, and in
 * JavaScript that was a quarter of a 4080-group backup's user time (docs/performance.md). What
 * does not depend on the counter (the key's pads, the prefix's whole blocks) is prepared by
 * src/protocol/hmac-sha1.ts in a slot of one shared arena, laid out as `carp_prep` below; here the counter
 * goes in, the inner and the outer hash are finished with the CPU's SHA extensions (one call,
 * two or three blocks: 140 ns against 360 ns in JavaScript), and the digest is written or
 * compared. Without the extensions the addon has no carpDigest and JavaScript does it all:
 * portable C measured slower here than V8's code for the same rounds (590 ns).
 */
#include "common.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#endif

#define BLOCK 64
#define DIGEST_LEN 20
#define COUNTER_LEN 8

/* The layout of PreparedDigest's `prep` (src/protocol/hmac-sha1.ts writes it; its test checks both). */
typedef struct {
  uint32_t inner[5]; /* SHA-1 state after the inner pad and the prefix's whole blocks */
  uint32_t outer[5]; /* SHA-1 state after the outer pad */
  uint8_t blocks;    /* 1 or 2: the tail's blocks */
  uint8_t counter_at;
  uint8_t unused[22];
  uint8_t tail[2 * BLOCK]; /* the prefix's rest, the counter's place, padding and length */
} carp_prep;

_Static_assert(offsetof(carp_prep, blocks) == 40, "prep layout");
_Static_assert(offsetof(carp_prep, counter_at) == 41, "prep layout");
_Static_assert(offsetof(carp_prep, tail) == 64, "prep layout");
_Static_assert(sizeof(carp_prep) == 192, "prep layout");

#if defined(__x86_64__)

/*
 * With the SHA extensions (Intel's SHA-1 instruction sequence): each SHA1RNDS4 does four
 * rounds, SHA1NEXTE derives the next E from the state four rounds back, and SHA1MSG1/SHA1MSG2
 * extend the message four words at a time: m[r] = msg2(msg1(m[r-4], m[r-3]) ^ m[r-2], m[r-1]).
 */
#define SHA_TARGET __attribute__((target("sha,sse4.1,ssse3")))

SHA_TARGET static void sha1_blocks_ni(uint32_t st[5], const uint8_t *p, size_t n) {
  /* Reverses all 16 bytes: big-endian words, and word 0 in the top lane as SHA1RNDS4 wants. */
  const __m128i order = _mm_set_epi64x(0x0001020304050607LL, 0x08090a0b0c0d0e0fLL);
  __m128i abcd = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)st), 0x1b);
  __m128i e0 = _mm_set_epi32((int)st[4], 0, 0, 0);
  for (; n > 0; n--, p += BLOCK) {
    const __m128i abcd_before = abcd, e_before = e0;
    __m128i m[4];
    for (int i = 0; i < 4; i++) m[i] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 16 * i)), order);
    __m128i prev = abcd;
    abcd = _mm_sha1rnds4_epu32(abcd, _mm_add_epi32(e0, m[0]), 0);
    __m128i e;
#define FOUR_ROUNDS(r, f)                                                                              \
  if ((r) >= 4)                                                                                        \
    m[(r) % 4] = _mm_sha1msg2_epu32(                                                                   \
        _mm_xor_si128(_mm_sha1msg1_epu32(m[(r) % 4], m[((r) + 1) % 4]), m[((r) + 2) % 4]), m[((r) + 3) % 4]); \
  e = _mm_sha1nexte_epu32(prev, m[(r) % 4]);                                                          \
  prev = abcd;                                                                                         \
  abcd = _mm_sha1rnds4_epu32(abcd, e, f);
    FOUR_ROUNDS(1, 0)
    FOUR_ROUNDS(2, 0)
    FOUR_ROUNDS(3, 0)
    FOUR_ROUNDS(4, 0)
    FOUR_ROUNDS(5, 1)
    FOUR_ROUNDS(6, 1)
    FOUR_ROUNDS(7, 1)
    FOUR_ROUNDS(8, 1)
    FOUR_ROUNDS(9, 1)
    FOUR_ROUNDS(10, 2)
    FOUR_ROUNDS(11, 2)
    FOUR_ROUNDS(12, 2)
    FOUR_ROUNDS(13, 2)
    FOUR_ROUNDS(14, 2)
    FOUR_ROUNDS(15, 3)
    FOUR_ROUNDS(16, 3)
    FOUR_ROUNDS(17, 3)
    FOUR_ROUNDS(18, 3)
    FOUR_ROUNDS(19, 3)
#undef FOUR_ROUNDS
    e0 = _mm_sha1nexte_epu32(prev, e_before);
    abcd = _mm_add_epi32(abcd, abcd_before);
  }
  _mm_storeu_si128((__m128i *)st, _mm_shuffle_epi32(abcd, 0x1b));
  st[4] = (uint32_t)_mm_extract_epi32(e0, 3);
}

static int has_sha_ni(void) {
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_SSE4_1) || !(c & bit_SSSE3)) return 0;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
  return (b & bit_SHA) != 0;
}

static void put_be32(uint8_t *p, uint32_t w) {
  p[0] = (uint8_t)(w >> 24);
  p[1] = (uint8_t)(w >> 16);
  p[2] = (uint8_t)(w >> 8);
  p[3] = (uint8_t)w;
}

/* The digest of the counter at `counter` into `out`. */
static void carp_digest(const carp_prep *prep, const uint8_t *counter, uint8_t out[DIGEST_LEN]) {
  uint8_t tail[2 * BLOCK];
  size_t len = (size_t)prep->blocks * BLOCK;
  memcpy(tail, prep->tail, len);
  memcpy(tail + prep->counter_at, counter, COUNTER_LEN);
  uint32_t st[5];
  memcpy(st, prep->inner, sizeof st);
  sha1_blocks_ni(st, tail, prep->blocks);
  uint8_t ob[BLOCK] = {0};
  for (int i = 0; i < 5; i++) put_be32(ob + 4 * i, st[i]);
  ob[DIGEST_LEN] = 0x80;
  /* The outer message is one pad block and the 20-byte inner digest: 672 bits. */
  ob[BLOCK - 2] = (uint8_t)(((BLOCK + DIGEST_LEN) * 8) >> 8);
  ob[BLOCK - 1] = (uint8_t)((BLOCK + DIGEST_LEN) * 8);
  memcpy(st, prep->outer, sizeof st);
  sha1_blocks_ni(st, ob, 1);
  for (int i = 0; i < 5; i++) put_be32(out + 4 * i, st[i]);
}

/*
 * carpDigest(arena, at, buf, counterOff, digestOff, compare) → boolean, with the prep at
 * arena[at]. Without compare, writes the digest of buf[counterOff..+8] at buf[digestOff] and
 * returns true; with it, returns whether the 20 bytes there are that digest, looking at every
 * byte whatever the first difference.
 */
static napi_value carp_digest_js(napi_env env, napi_callback_info info) {
  napi_value argv[6];
  if (call_args(env, info, 6, argv, "carpDigest(arena, at, buf, counterOff, digestOff, compare)") < 0) return NULL;
  const size_t argc = 6;
  size_t arena_len, len;
  const uint8_t *arena = typed_array_arg(env, argv[0], napi_uint8_array, &arena_len, "arena");
  if (!arena) return NULL;
  int32_t at = int_arg(env, argv, argc, 1, "at");
  if (at < 0) return NULL;
  uint8_t *buf = typed_array_arg(env, argv[2], napi_uint8_array, &len, "buf");
  if (!buf) return NULL;
  int32_t counter_off = int_arg(env, argv, argc, 3, "counterOff");
  if (counter_off < 0) return NULL;
  int32_t digest_off = int_arg(env, argv, argc, 4, "digestOff");
  if (digest_off < 0) return NULL;
  bool compare;
  if (napi_get_value_bool(env, argv[5], &compare) != napi_ok) {
    napi_throw_type_error(env, NULL, "compare must be a boolean");
    return NULL;
  }
  carp_prep p;
  if ((size_t)at + sizeof p > arena_len) {
    napi_throw_range_error(env, NULL, "at is outside the arena");
    return NULL;
  }
  memcpy(&p, arena + at, sizeof p);
  if ((p.blocks != 1 && p.blocks != 2) || p.counter_at + COUNTER_LEN > p.blocks * BLOCK) {
    napi_throw_range_error(env, NULL, "no prepared digest at arena[at]");
    return NULL;
  }
  if ((size_t)counter_off + COUNTER_LEN > len || (size_t)digest_off + DIGEST_LEN > len) {
    napi_throw_range_error(env, NULL, "counter or digest outside buf");
    return NULL;
  }
  uint8_t digest[DIGEST_LEN];
  carp_digest(&p, buf + counter_off, digest);
  bool result = true;
  if (compare) {
    uint8_t diff = 0;
    for (int i = 0; i < DIGEST_LEN; i++) diff |= digest[i] ^ buf[digest_off + i];
    result = diff == 0;
  } else {
    memcpy(buf + digest_off, digest, DIGEST_LEN);
  }
  napi_value out;
  napi_get_boolean(env, result, &out);
  return out;
}

void define_digest(napi_env env, napi_value exports) {
  if (!has_sha_ni()) return;
  napi_property_descriptor props[] = {
      {"carpDigest", NULL, carp_digest_js, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
}

#else

/* Elsewhere JavaScript computes the digest (src/protocol/hmac-sha1.ts). */
void define_digest(napi_env env, napi_value exports) {
  (void)env;
  (void)exports;
}

#endif
