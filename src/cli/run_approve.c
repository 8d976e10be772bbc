/* --approve for `claude-gateway run`.
 *
 * all:  no tool needs approval.
 * none: every tool needs it and is denied at once (the log shows the request, then the
 *       tool_result with user_denied).
 * ask:  every tool needs it. With a terminal on stdin the requests are asked one at a time on
 *       stderr and the answer is read from stdin on the loop (the other sessions and tools keep
 *       going meanwhile). Without a terminal nobody can answer, so each request is denied with
 *       a note on stderr instead of waiting out the 120 s timeout. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "cli/run_cli.h"
#include "core/alloc.h"
#include "core/json.h"

typedef struct pending {
    char *tool_call_id, *nonce, *tool_name, *input;
    cgw_approvals_t *approvals;
    struct pending *next;
} pending_t;

struct cgw__run_approver {
    cgw__run_approve_t mode;
    bool tty;
    bool warned; /* the no-terminal note was printed */
    struct event *stdin_ev;
    pending_t *head, *tail;
    char line[256];
    size_t line_len;
};

static void pending_free(pending_t *p)
{
    cgw_free(p->tool_call_id);
    cgw_free(p->nonce);
    cgw_free(p->tool_name);
    cgw_free(p->input);
    cgw_free(p);
}

static void prompt(cgw__run_approver_t *ap)
{
    const pending_t *p = ap->head;
    fprintf(stderr, "\nAllow tool %s with input %.300s?\n  [y]es, [n]o, [a]lways for this tool: ",
            p->tool_name, p->input != NULL ? p->input : "{}");
    fflush(stderr);
}

/* Answers the request at the head of the queue and asks the next one. */
static void answer_head(cgw__run_approver_t *ap, bool approved, bool always)
{
    pending_t *p = ap->head;
    ap->head = p->next;
    if (ap->head == NULL) {
        ap->tail = NULL;
        event_del(ap->stdin_ev);
    }
    int rc = cgw_approvals_answer(p->approvals, p->tool_call_id, p->nonce, approved, always);
    if (rc == CGW_EEXPIRED) {
        fprintf(stderr, "(too late: the request for %s timed out)\n", p->tool_name);
    }
    pending_free(p);
    if (ap->head != NULL) {
        prompt(ap);
    }
}

static void on_stdin(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    cgw__run_approver_t *ap = arg;
    char c;
    ssize_t n = -1; /* stays -1 when there is nothing to ask: no read, no EOF */
    while (ap->head != NULL && (n = read(fd, &c, 1)) == 1) {
        if (c != '\n') {
            if (ap->line_len + 1 < sizeof(ap->line)) {
                ap->line[ap->line_len++] = c;
            }
            continue;
        }
        char first = ap->line_len > 0 ? ap->line[0] : 'n';
        ap->line_len = 0;
        answer_head(ap, first == 'y' || first == 'Y' || first == 'a' || first == 'A',
                    first == 'a' || first == 'A');
        return; /* one answer per wake-up: the terminal delivers a line per read */
    }
    if (n == 0) { /* end of input: nobody is left to answer */
        while (ap->head != NULL) {
            fprintf(stderr, "\n(stdin closed: denying %s)\n", ap->head->tool_name);
            answer_head(ap, false, false);
        }
    }
}

static bool needs_approval(const char *tool_name, const json_t *input, void *user)
{
    (void)tool_name;
    (void)input;
    (void)user;
    return true;
}

static void request_approval(const cgw_approval_request_t *req, void *user)
{
    cgw__run_approver_t *ap = user;
    if (ap->mode == CGW_RUN_APPROVE_ASK && !ap->tty && !ap->warned) {
        ap->warned = true; /* once, not once per call of every session */
        fprintf(stderr,
                "claude-gateway run: --approve ask: stdin is not a terminal, so nobody can "
                "answer; denying every tool call (the first: %s)\n",
                req->tool_name);
    }
    pending_t *p = NULL;
    if (ap->mode == CGW_RUN_APPROVE_ASK && ap->tty && (p = cgw__calloc(1, sizeof(*p))) != NULL) {
        p->tool_call_id = cgw__strdup(req->tool_call_id);
        p->nonce = cgw__strdup(req->nonce);
        p->tool_name = cgw__strdup(req->tool_name);
        p->input = cgw_json_dump(req->tool_input, NULL);
        p->approvals = req->approvals;
    }
    if (p == NULL || p->tool_call_id == NULL || p->nonce == NULL || p->tool_name == NULL) {
        if (p != NULL) {
            pending_free(p);
        }
        cgw_approvals_answer(req->approvals, req->tool_call_id, req->nonce, false, false);
        return;
    }
    if (ap->tail != NULL) {
        ap->tail->next = p;
    } else {
        ap->head = p;
        event_add(ap->stdin_ev, NULL);
        prompt(ap);
    }
    ap->tail = p;
}

int cgw__run_approver_new(cgw_ctx_t *ctx, cgw__run_approve_t mode, cgw__run_approver_t **out)
{
    cgw__run_approver_t *ap = cgw__calloc(1, sizeof(*ap));
    if (ap == NULL) {
        return CGW_ENOMEM;
    }
    ap->mode = mode;
    ap->tty = isatty(STDIN_FILENO) == 1;
    if (mode == CGW_RUN_APPROVE_ASK && ap->tty) {
        ap->stdin_ev =
            event_new(cgw_ctx_base(ctx), STDIN_FILENO, EV_READ | EV_PERSIST, on_stdin, ap);
        if (ap->stdin_ev == NULL) {
            cgw_free(ap);
            return CGW_ENOMEM;
        }
    }
    *out = ap;
    return CGW_OK;
}

void cgw__run_approver_free(cgw__run_approver_t *ap)
{
    if (ap == NULL) {
        return;
    }
    while (ap->head != NULL) {
        pending_t *p = ap->head;
        ap->head = p->next;
        pending_free(p);
    }
    if (ap->stdin_ev != NULL) {
        event_free(ap->stdin_ev);
    }
    cgw_free(ap);
}

void cgw__run_approver_setup(cgw__run_approver_t *ap, cgw_dispatcher_options_t *opts)
{
    if (ap->mode == CGW_RUN_APPROVE_ALL) {
        return;
    }
    opts->needs_approval = needs_approval;
    opts->request_approval = request_approval;
    opts->approval_user = ap;
}
