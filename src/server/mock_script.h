/* mock-api scripts: the turns the mock serves, parsed from the JSON format of docs/mock-api.md,
 * and their rendering into the bytes of one answer (SSE frames or a Message JSON).
 *
 * No I/O besides reading replay files at load time, no loop: everything here is plain data so
 * that it can be unit-tested and fuzzed. */
#ifndef CGW_SERVER_MOCK_SCRIPT_H
#define CGW_SERVER_MOCK_SCRIPT_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "cgw/error.h"

/* Where a fault (error event, hang, cut) happens in a streamed answer. */
typedef enum cgw__mock_at_kind {
    CGW_MOCK_AT_NONE = 0, /* the turn has no such fault */
    CGW_MOCK_AT_REQUEST,  /* before the response headers */
    CGW_MOCK_AT_HEADERS,  /* right after the headers, before message_start */
    CGW_MOCK_AT_DELTAS    /* after `deltas` content_block_delta events (0: after message_start) */
} cgw__mock_at_kind_t;

typedef struct cgw__mock_at {
    cgw__mock_at_kind_t kind;
    int deltas;
} cgw__mock_at_t;

/* One content block of a turn. */
typedef struct cgw__mock_block {
    json_t *final;          /* the complete block, as a non-streamed Message holds it */
    json_t *start;          /* content_block_start's content_block */
    const char *delta_type; /* "text_delta", "thinking_delta", "input_json_delta"; NULL: none */
    const char *delta_key;  /* "text", "thinking", "partial_json" */
    json_t *deltas;         /* array of strings, one per content_block_delta */
    json_t *citations;      /* text: citation objects, one citations_delta each; or NULL */
    int delay_ms;           /* pause before each delta; -1 = the turn's */
} cgw__mock_block_t;

/* A recorded response served by a replay turn. status 0 = a bare SSE body (serve 200). */
typedef struct cgw__mock_capture {
    int status;
    json_t *headers; /* array of [name, value] from the capture, hop-by-hop ones dropped */
    char *body;
    size_t body_len;
} cgw__mock_capture_t;

typedef struct cgw__mock_turn {
    char *name;          /* for /_mock/stats; "turn-<n>" (1-based) by default */
    char *match;         /* marker looked for in the last user message, or NULL */
    int status;          /* HTTP status; 200 for a normal answer */
    json_t *headers;     /* object: extra response headers (a null value drops a default) */
    char *error_type;    /* error turn: error.type; stream turn: the error event's type */
    char *error_message; /* likewise, error.message */
    char *raw_body;      /* error turn: body sent as is instead of the JSON error, or NULL */
    cgw__mock_block_t *blocks;
    size_t nblocks;
    json_t *stop_reason;   /* string */
    json_t *stop_sequence; /* string or null */
    json_t *stop_details;  /* object (e.g. a refusal's) or NULL: not sent */
    json_t *usage;         /* object of counters (input_tokens, output_tokens, cache_*) */
    char *model;           /* NULL: echo the request's model */
    char *id;              /* NULL: generated msg_mock_... */
    int delay_ms;          /* pause before each delta (and each replayed frame) */
    bool ping;             /* send a ping event after message_start */
    cgw__mock_at_t error_at, hang_at, cut_at;
    cgw__mock_capture_t *replay; /* replay turn: serve this recording */
    json_t *issued; /* object: thinking signature -> thinking text, "redacted:" + data -> "" */
} cgw__mock_turn_t;

typedef enum cgw__mock_exhausted {
    CGW_MOCK_EXHAUSTED_ERROR = 0, /* answer 500 api_error "script exhausted" */
    CGW_MOCK_EXHAUSTED_REPEAT_LAST,
    CGW_MOCK_EXHAUSTED_CYCLE
} cgw__mock_exhausted_t;

typedef struct cgw__mock_script {
    cgw__mock_turn_t *turns;
    size_t nturns;
    cgw__mock_exhausted_t when_exhausted;
} cgw__mock_script_t;

/* Parses a script document (borrowed). Relative replay paths are resolved against `base_dir`
 * (NULL: the working directory). *out owns a new script freed with cgw__mock_script_free.
 * Returns CGW_OK, CGW_ECONFIG (err names the turn and the field), CGW_ENOENT/CGW_EIO (a
 * replay file) or CGW_ENOMEM. */
int cgw__mock_script_parse(const json_t *doc, const char *base_dir, cgw__mock_script_t **out,
                           cgw_error_t *err);

/* Reads and parses a script file. Same returns as cgw__mock_script_parse, plus CGW_EJSON. */
int cgw__mock_script_load(const char *path, cgw__mock_script_t **out, cgw_error_t *err);

/* A script of one replay turn, repeated forever, serving `path` (a bare .sse body or a raw
 * `curl -D -` capture). Returns CGW_OK, CGW_ENOENT/CGW_EIO, CGW_ECONFIG or CGW_ENOMEM. */
int cgw__mock_script_replay(const char *path, cgw__mock_script_t **out, cgw_error_t *err);

/* The script used when none is given: one text turn, repeated forever. */
int cgw__mock_script_default(cgw__mock_script_t **out, cgw_error_t *err);

void cgw__mock_script_free(cgw__mock_script_t *s);

/* ---- recordings (mock_capture.c) ---------------------------------------------------------- */

/* Reads a whole file into *data (NUL-terminated; free with cgw_free). Returns CGW_OK,
 * CGW_ENOENT, CGW_EIO or CGW_ENOMEM, with the path in err. */
int cgw__mock_read_file(const char *path, char **data, size_t *len, cgw_error_t *err);

/* Parses a recorded response: either a raw HTTP capture (status line, headers, blank line,
 * body; 1xx blocks skipped) or a bare SSE body. `data` is borrowed. */
int cgw__mock_capture_parse(const char *data, size_t len, cgw__mock_capture_t **out,
                            cgw_error_t *err);
void cgw__mock_capture_free(cgw__mock_capture_t *c);

/* Builds a recording from a turn's "response" object: {"status": N (default 200), "headers":
 * {name: value} | [[name, value], ...] | [name, value, name, value, ...], "body": string, or
 * any JSON value (sent compact)}. Returns CGW_OK, CGW_ECONFIG or CGW_ENOMEM. */
int cgw__mock_capture_from_json(const json_t *resp, cgw__mock_capture_t **out, cgw_error_t *err);

/* When `doc` is a list of recorded HTTP exchanges (the SDKs' formats: Python inline snapshots
 * [{"request", "response": {"status_code", "headers", "body"}}], nock [{"status",
 * "rawHeaders", "response"}]), returns a script document (new reference) with one "response"
 * turn per exchange, in order, cycling. Otherwise NULL. */
json_t *cgw__mock_exchanges_script(const json_t *doc);

/* Splits an SSE body into frames (each ends after its blank line; a last unterminated frame is
 * kept). Fills offsets of frame ends into a new array (caller frees with cgw_free) and returns
 * the count, or -1 when out of memory. */
long cgw__mock_sse_frames(const char *body, size_t len, size_t **ends);

/* Adds the thinking signatures and redacted_thinking data found in an SSE body to `issued`
 * (same layout as cgw__mock_turn_t.issued). Malformed frames are skipped. */
void cgw__mock_sse_harvest(const char *body, size_t len, json_t *issued);

/* ---- rendering (mock_render.c) ------------------------------------------------------------ */

/* What a fault turns the end of a streamed answer into. */
typedef enum cgw__mock_end {
    CGW_MOCK_END_FINISH = 0, /* end the chunked reply normally */
    CGW_MOCK_END_HANG,       /* send nothing more, keep the connection open */
    CGW_MOCK_END_CUT         /* close the connection without ending the reply */
} cgw__mock_end_t;

/* One SSE frame of a planned answer. */
typedef struct cgw__mock_frame {
    char *bytes;
    size_t len;
    int delay_ms; /* pause before sending it */
    long stamp_at; /* offset of CGW_MOCK_STAMP in a delta's bytes, or -1 */
} cgw__mock_frame_t;

/* A text or thinking delta containing this marker has it replaced, when the frame is written,
 * by the wall-clock time of the write in microseconds since the epoch (16 digits), so that a
 * client can measure the latency of each delta. */
#define CGW_MOCK_STAMP "{{mock_write_us}}"

/* A streamed answer, ready to send. */
typedef struct cgw__mock_plan {
    int status;
    json_t *headers; /* array of [name, value] */
    cgw__mock_frame_t *frames;
    size_t nframes;
    bool before_headers; /* the end action happens before the headers are sent */
    cgw__mock_end_t end;
} cgw__mock_plan_t;

/* Builds the streamed answer of `turn` (a 200 turn or a replay turn). `model` is the request's
 * model, `msg_id` the message id to use when the turn names none. */
int cgw__mock_plan_stream(const cgw__mock_turn_t *turn, const char *model, const char *msg_id,
                          cgw__mock_plan_t **out);
void cgw__mock_plan_free(cgw__mock_plan_t *p);

/* The non-streamed Message of a 200 turn (new reference, NULL when out of memory). */
json_t *cgw__mock_turn_message(const cgw__mock_turn_t *turn, const char *model, const char *msg_id);

/* The HTTP status a non-streamed request gets for an error event of type `type`. */
int cgw__mock_error_status(const char *type);

/* Default error type and message for an HTTP error status. */
const char *cgw__mock_default_error_type(int status);
const char *cgw__mock_default_error_message(int status);

#endif
