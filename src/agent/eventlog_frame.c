/* Serialization of EventLog entries, once per entry, and the resume-position parser.
 *
 * The timestamp is kept as integer microseconds and printed as "<seconds>.<6 digits>", so the
 * text is exact and cheap to produce, and entry.ts (us / 1e6, a correctly rounded division)
 * is the double that text parses back to. */
#include <string.h>

#include "agent/eventlog_frame.h"
#include "core/alloc.h"
#include "core/json.h"

/* Frames stay addressable with 32-bit offsets. */
#define FRAME_MAX ((size_t)UINT32_MAX)

/* Writes the decimal digits of v to out (no NUL) and returns how many. */
static size_t fmt_u64(char *out, uint64_t v)
{
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    for (size_t i = 0; i < n; i++) {
        out[i] = tmp[n - 1 - i];
    }
    return n;
}

/* Copies bytes into room the caller reserved (no capacity checks on this hot path). */
static void put(cgw_buf_t *b, const char *p, size_t n)
{
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

#define PUT_LIT(b, lit) put((b), (lit), sizeof(lit) - 1)

/* Writes everything before the event JSON; the caller reserved room for it. */
static void write_prefix(cgw_buf_t *b, uint64_t seq, int64_t ts_us, cgw_str_t type)
{
    char seqtxt[20];
    size_t seqlen = fmt_u64(seqtxt, seq);
    uint64_t uts = ts_us < 0 ? 0 : (uint64_t)ts_us;
    char frac[7] = {'.'};
    uint64_t us = uts % 1000000;
    for (int i = 6; i >= 1; i--) {
        frac[i] = (char)('0' + us % 10);
        us /= 10;
    }

    PUT_LIT(b, "id: ");
    put(b, seqtxt, seqlen);
    PUT_LIT(b, "\nevent: ");
    put(b, type.ptr, type.len);
    PUT_LIT(b, "\ndata: {\"seq\":");
    put(b, seqtxt, seqlen);
    PUT_LIT(b, ",\"ts\":");
    b->len += fmt_u64(b->data + b->len, uts / 1000000);
    put(b, frac, sizeof(frac));
    PUT_LIT(b, ",\"event\":");
    b->data[b->len] = '\0';
}

int cgw__frame_new(uint64_t seq, int64_t ts_us, cgw_str_t type, bool terminal, const json_t *event,
                   cgw_buf_t *scratch, cgw__frame_t **out)
{
    cgw_buf_reset(scratch);
    /* Room for the prefix: 53 bytes of fixed text, two seqs and the ts seconds (20 digits
     * each at most), 7 of fraction, the type. */
    int rc = cgw_buf_reserve(scratch, 128 + type.len);
    if (rc != CGW_OK) {
        return rc;
    }
    write_prefix(scratch, seq, ts_us, type);
    size_t event_off = scratch->len;
    rc = cgw_json_dump_buf(event, scratch);
    if (rc == CGW_OK) {
        rc = cgw_buf_append(scratch, "}\n\n", 3);
    }
    if (rc != CGW_OK) {
        return rc;
    }
    if (scratch->len > FRAME_MAX) {
        return CGW_E2BIG;
    }
    cgw__frame_t *f = cgw__malloc(sizeof(*f) + scratch->len);
    if (f == NULL) {
        return CGW_ENOMEM;
    }
    f->ts_us = ts_us;
    f->len = (uint32_t)scratch->len;
    f->event_off = (uint16_t)event_off;
    f->type_len = (uint8_t)type.len;
    f->terminal = terminal ? 1 : 0;
    memcpy(f->bytes, scratch->data, scratch->len);
    *out = f;
    return CGW_OK;
}

void cgw__frame_view(const cgw__frame_t *f, uint64_t seq, cgw_eventlog_entry_t *out)
{
    char seqtxt[20];
    size_t type_off = 4 + fmt_u64(seqtxt, seq) + 8; /* "id: " SEQ "\nevent: " */
    size_t entry_off = type_off + f->type_len + 7;  /* "\ndata: " */
    out->seq = seq;
    out->ts = (double)f->ts_us / 1e6;
    out->terminal = f->terminal != 0;
    out->type = (cgw_str_t){f->bytes + type_off, f->type_len};
    out->event_json = (cgw_str_t){f->bytes + f->event_off, f->len - f->event_off - 3};
    out->json = (cgw_str_t){f->bytes + entry_off, f->len - entry_off - 2};
    out->frame = (cgw_str_t){f->bytes, f->len};
}

int cgw_eventlog_parse_seq(cgw_str_t s, uint64_t *out)
{
    if (s.ptr == NULL || s.len == 0 || out == NULL) {
        return CGW_EINVAL;
    }
    /* No leading zero: a seq we sent never has one, so "007" is not ours. */
    if (s.ptr[0] == '0' && s.len > 1) {
        return CGW_EINVAL;
    }
    uint64_t v = 0;
    for (size_t i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.ptr[i];
        if (c < '0' || c > '9') {
            return CGW_EINVAL;
        }
        unsigned d = c - '0';
        if (v > ((uint64_t)INT64_MAX - d) / 10) {
            return CGW_EINVAL;
        }
        v = v * 10 + d;
    }
    *out = v;
    return CGW_OK;
}
