/* See delta_scan.h. The decoder follows RFC 8259 strings with jansson's extra rules (valid
 * UTF-8 only, no lone surrogates; \u0000 allowed as the accumulator parses with
 * JSON_ALLOW_NUL). */
#include "proto/delta_scan.h"

#include <string.h>

#include "cgw/error.h"

static const char PREFIX[] = "{\"type\":\"content_block_delta\",\"index\":";

#define TEXT_LIT ",\"delta\":{\"type\":\"text_delta\",\"text\":\""
#define INPUT_LIT ",\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\""
#define THINKING_LIT ",\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\""

static const struct {
    const char *lit;
    size_t len;
    cgw_delta_kind_t kind;
} KINDS[] = {
    {TEXT_LIT, sizeof(TEXT_LIT) - 1, CGW_DELTA_TEXT},
    {INPUT_LIT, sizeof(INPUT_LIT) - 1, CGW_DELTA_INPUT},
    {THINKING_LIT, sizeof(THINKING_LIT) - 1, CGW_DELTA_THINKING},
};

static int hex4(const char *s, const char *end, uint32_t *out)
{
    if (end - s < 4) {
        return 0;
    }
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0) {
            return 0;
        }
        v = v * 16 + (uint32_t)d;
    }
    *out = v;
    return 1;
}

static int put_utf8(cgw_buf_t *b, uint32_t cp)
{
    char u[4];
    size_t n;
    if (cp < 0x80) {
        u[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (char)(0xC0 | (cp >> 6));
        u[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        u[0] = (char)(0xE0 | (cp >> 12));
        u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        u[0] = (char)(0xF0 | (cp >> 18));
        u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    return cgw_buf_append(b, u, n) == CGW_OK;
}

/* \uXXXX (s points after the 'u'), with surrogate pairs. Returns the bytes consumed, 0 to
 * decline. */
static size_t unicode_escape(const char *s, const char *end, cgw_buf_t *b)
{
    uint32_t cp;
    if (!hex4(s, end, &cp)) {
        return 0;
    }
    if (cp >= 0xDC00 && cp <= 0xDFFF) {
        return 0; /* lone low surrogate */
    }
    if (cp >= 0xD800 && cp <= 0xDBFF) {
        uint32_t lo;
        if (end - s < 10 || s[4] != '\\' || s[5] != 'u' || !hex4(s + 6, end, &lo) || lo < 0xDC00 ||
            lo > 0xDFFF) {
            return 0;
        }
        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        return put_utf8(b, cp) ? 10 : 0;
    }
    return put_utf8(b, cp) ? 4 : 0;
}

/* Length of the valid UTF-8 sequence at s (lead byte >= 0x80), 0 if invalid. */
static size_t utf8_len(const unsigned char *s, const unsigned char *end)
{
    unsigned c = s[0];
    size_t n;
    uint32_t cp;
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
        cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if ((size_t)(end - s) < n) {
        return 0;
    }
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            return 0;
        }
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if ((n == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
        (n == 4 && (cp < 0x10000 || cp > 0x10FFFF))) {
        return 0; /* overlong, surrogate or out of range */
    }
    return n;
}

static char simple_escape(char c)
{
    switch (c) {
    case '"':
        return '"';
    case '\\':
        return '\\';
    case '/':
        return '/';
    case 'b':
        return '\b';
    case 'f':
        return '\f';
    case 'n':
        return '\n';
    case 'r':
        return '\r';
    case 't':
        return '\t';
    default:
        return 0;
    }
}

/* Decodes a string body starting after its opening quote; returns a pointer after the closing
 * quote, or NULL to decline. */
static const char *decode_string(const char *s, const char *end, cgw_buf_t *b)
{
    while (s < end) {
        const char *run = s;
        while (s < end && *s != '"' && *s != '\\' && (unsigned char)*s >= 0x20 &&
               (unsigned char)*s < 0x80) {
            s++;
        }
        if (s > run && cgw_buf_append(b, run, (size_t)(s - run)) != CGW_OK) {
            return NULL;
        }
        if (s == end) {
            return NULL;
        }
        unsigned char c = (unsigned char)*s;
        if (c == '"') {
            return s + 1;
        }
        if (c < 0x20) {
            return NULL;
        }
        if (c >= 0x80) {
            size_t n = utf8_len((const unsigned char *)s, (const unsigned char *)end);
            if (n == 0 || cgw_buf_append(b, s, n) != CGW_OK) {
                return NULL;
            }
            s += n;
            continue;
        }
        if (end - s < 2) {
            return NULL;
        }
        if (s[1] == 'u') {
            size_t n = unicode_escape(s + 2, end, b);
            if (n == 0) {
                return NULL;
            }
            s += 2 + n;
        } else {
            char e = simple_escape(s[1]);
            if (e == 0 || cgw_buf_append_char(b, e) != CGW_OK) {
                return NULL;
            }
            s += 2;
        }
    }
    return NULL;
}

int cgw__delta_scan(const char *data, size_t len, cgw_delta_t *out, cgw_buf_t *scratch)
{
    const char *s = data, *end = data + len;
    size_t plen = sizeof(PREFIX) - 1;
    if (len < plen || memcmp(s, PREFIX, plen) != 0) {
        return 0;
    }
    s += plen;
    /* index: a non-negative integer without leading zeros, as JSON spells it */
    if (s == end || *s < '0' || *s > '9' ||
        (*s == '0' && end - s > 1 && s[1] >= '0' && s[1] <= '9')) {
        return 0;
    }
    uint32_t index = 0;
    for (; s < end && *s >= '0' && *s <= '9'; s++) {
        if (index > 100000000u) {
            return 0;
        }
        index = index * 10 + (uint32_t)(*s - '0');
    }
    size_t k = 0;
    while (k < sizeof(KINDS) / sizeof(KINDS[0]) &&
           ((size_t)(end - s) < KINDS[k].len || memcmp(s, KINDS[k].lit, KINDS[k].len) != 0)) {
        k++;
    }
    if (k == sizeof(KINDS) / sizeof(KINDS[0])) {
        return 0;
    }
    s += KINDS[k].len;
    cgw_buf_reset(scratch);
    s = decode_string(s, end, scratch);
    if (s == NULL || end - s < 2 || s[0] != '}' || s[1] != '}') {
        return 0;
    }
    for (s += 2; s < end; s++) {
        if (*s != ' ' && *s != '\t' && *s != '\n' && *s != '\r') {
            return 0;
        }
    }
    out->kind = KINDS[k].kind;
    out->index = index;
    return 1;
}
