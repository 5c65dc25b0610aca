/*
 * sync.c — ss_sync, the synchronous strategy (Python's plain TCPServer):
 * each request runs to completion on the serving thread before the next is
 * accepted. The simplest strategy, and the template for the others: take
 * the request, run it with ss_run_request(), which also releases it.
 */
#include "sockserv/strategy.h"

static int sync_process_request(ss_server *srv, ss_request *req)
{
    ss_run_request(srv, req);
    return 0;
}

const ss_strategy ss_sync = {
    .name = "sync",
    .wait_class = &ss_blocking_wait,
    .process_request = sync_process_request,
    /* One request at a time, but an idle connection holds nothing: it
     * waits in the loop's lot until its client sends. */
    .parking = SS_PARK_NEW_CONNECTIONS | SS_PARK_IDLE_REQUESTS,
};
