/*
 * websocket_utf8.c — the UTF-8 check of text messages (RFC 6455 §8.1),
 * incremental: a message arrives in fragments and reads that split
 * characters anywhere, and a bad byte must fail the connection as soon as
 * it arrives (1007), not when the message ends.
 *
 * The state is what the next byte may be, per RFC 3629's table: 0 between
 * characters; otherwise the count of continuation bytes still due in the
 * low bits and, for the second byte of the few lead bytes that narrow it
 * (E0, ED, F0, F4: no overlong forms, no surrogates, nothing above
 * U+10FFFF), its allowed range in the high bits.
 */
#include "websocket_internal.h"

/* state = remaining continuation bytes | range << 8, where range says
 * what the very next byte may be: */
enum {
    ANY = 0,    /* 80..BF */
    E0_2ND = 1, /* A0..BF */
    ED_2ND = 2, /* 80..9F */
    F0_2ND = 3, /* 90..BF */
    F4_2ND = 4, /* 80..8F */
};

static uint32_t lead(uint8_t c)
{
    if (c < 0x80)
        return 0;
    if (c >= 0xC2 && c <= 0xDF)
        return 1;
    if (c == 0xE0)
        return 2 | E0_2ND << 8;
    if (c == 0xED)
        return 2 | ED_2ND << 8;
    if (c >= 0xE1 && c <= 0xEF)
        return 2;
    if (c == 0xF0)
        return 3 | F0_2ND << 8;
    if (c >= 0xF1 && c <= 0xF3)
        return 3;
    if (c == 0xF4)
        return 3 | F4_2ND << 8;
    return WS_UTF8_REJECT; /* 80..C1 as a lead, F5..FF */
}

uint32_t ss__ws_utf8_feed(uint32_t state, const uint8_t *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (state == WS_UTF8_REJECT)
            return state;
        uint8_t c = s[i];
        if (state == 0) {
            /* ASCII runs are the common case: skip them quickly. */
            if (c < 0x80)
                continue;
            state = lead(c);
            continue;
        }
        uint8_t lo = 0x80, hi = 0xBF;
        switch (state >> 8) {
        case E0_2ND: lo = 0xA0; break;
        case ED_2ND: hi = 0x9F; break;
        case F0_2ND: lo = 0x90; break;
        case F4_2ND: hi = 0x8F; break;
        default: break;
        }
        if (c < lo || c > hi)
            return WS_UTF8_REJECT;
        state = (state & 0xff) - 1;
    }
    return state;
}

bool ss__ws_utf8_valid(const void *s, size_t n)
{
    return ss__ws_utf8_feed(WS_UTF8_ACCEPT, s, n) == WS_UTF8_ACCEPT;
}
