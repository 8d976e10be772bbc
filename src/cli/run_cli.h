/* Internals of `claude-gateway run` shared by cmd_run.c (flags, set-up, the loop),
 * run_output.c (jsonl and text rendering of the events) and run_approve.c (--approve). */
#ifndef CGW_CLI_RUN_CLI_H
#define CGW_CLI_RUN_CLI_H

#include <stdbool.h>
#include <stdio.h>

#include <jansson.h>

#include "cgw.h"
#include "core/buf.h"

typedef enum { CGW_RUN_APPROVE_ALL, CGW_RUN_APPROVE_NONE, CGW_RUN_APPROVE_ASK } cgw__run_approve_t;
typedef enum { CGW_RUN_OUT_JSONL, CGW_RUN_OUT_TEXT } cgw__run_format_t;

/* The output shared by every session: one stdout, written line by line. */
typedef struct cgw__run_out {
    FILE *fp;
    cgw__run_format_t format;
    bool multi;    /* --sessions > 1: jsonl lines get "session", text lines a "[K] " prefix */
    bool color;    /* stdout is a terminal: thinking dimmed, errors highlighted */
    bool prompts;  /* approvals are asked on the terminal: the prompt says it all */
    cgw_buf_t tmp; /* scratch for one jsonl line */
    bool lost;     /* a write failed (closed pipe, full disk): nothing more is written */
    void (*on_lost)(void *user); /* told once, from inside the append that failed */
    void *on_lost_user;
} cgw__run_out_t;

/* What the text renderer remembers about one session. */
typedef struct cgw__run_view {
    cgw__run_out_t *out;
    int index;      /* 1-based session number */
    cgw_buf_t line; /* --sessions > 1: the session's unfinished line */
    bool mid_line;  /* --sessions 1: the cursor is not at the start of a line */
    bool thinking;  /* the open line is thinking (dimmed) */
} cgw__run_view_t;

/* Writes one EventLog entry (jsonl: its stored bytes, prefixed with "session" when needed;
 * text: a rendering for a person) and flushes. `event` is the appended object. */
void cgw__run_render(cgw__run_view_t *v, const cgw_eventlog_entry_t *entry, const json_t *event);

/* Ends the session's output (text: finishes an open line). Frees the view's buffers. */
void cgw__run_view_finish(cgw__run_view_t *v);

/* --approve: the dispatcher callbacks for each mode. `ask` prompts on the terminal (one
 * request at a time, read from stdin on the loop); without a terminal on stdin every request
 * is denied with a note on stderr. */
typedef struct cgw__run_approver cgw__run_approver_t;

int cgw__run_approver_new(cgw_ctx_t *ctx, cgw__run_approve_t mode, cgw__run_approver_t **out);
void cgw__run_approver_free(cgw__run_approver_t *ap);
/* Fills the approval fields of dispatcher options for the approver's mode. */
void cgw__run_approver_setup(cgw__run_approver_t *ap, cgw_dispatcher_options_t *opts);

#endif
