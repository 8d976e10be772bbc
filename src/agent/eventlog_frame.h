/* Stored form of an EventLog entry: one allocation holding a small header and the entry's SSE
 * frame, out of which the entry JSON and the event JSON are ranges. Internal to src/agent. */
#ifndef CGW_AGENT_EVENTLOG_FRAME_H
#define CGW_AGENT_EVENTLOG_FRAME_H

#include <jansson.h>

#include "cgw/eventlog.h"
#include "core/buf.h"

/* Longest accepted event type; it must fit the header's byte. */
#define CGW_EVENTLOG_MAX_TYPE 255

/* 16 bytes of header, then the frame:
 *   "id: " SEQ "\nevent: " TYPE "\ndata: " {"seq":SEQ,"ts":TS,"event":EVENT} "\n\n"
 * The type starts right after "id: SEQ\nevent: ", so its offset follows from the seq and is
 * not stored; the event ends 3 bytes before the frame does ("}\n\n"). */
typedef struct cgw__frame {
    int64_t ts_us;      /* Unix microseconds */
    uint32_t len;       /* bytes of frame */
    uint16_t event_off; /* where the event JSON starts */
    uint8_t type_len;
    uint8_t terminal;
    char bytes[];
} cgw__frame_t;

/* Builds the frame of entry `seq` in `scratch` (reset first, reused across calls so that an
 * append allocates only the final record) and copies it into a new record (*out, freed with
 * cgw_free). `type` must already be validated. Returns CGW_OK, CGW_EINVAL (event too deep),
 * CGW_E2BIG (frame over 4 GiB) or CGW_ENOMEM. */
int cgw__frame_new(uint64_t seq, int64_t ts_us, cgw_str_t type, bool terminal, const json_t *event,
                   cgw_buf_t *scratch, cgw__frame_t **out);

/* Fills the public view of record `f`, which holds entry `seq`. */
void cgw__frame_view(const cgw__frame_t *f, uint64_t seq, cgw_eventlog_entry_t *out);

#endif
