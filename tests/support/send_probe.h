/*
 * send_probe.h — what a request's waits to send were allowed, for tests of
 * write deadlines that should not depend on how long things took.
 *
 * A transport (ss_plain_transport underneath) notes when bytes last moved
 * out; a wait class (ss_blocking_wait underneath) notes, for every wait
 * for POLLOUT on a request's own socket, how far past that moment its
 * deadline lies: how long the request was allowed to go without a byte
 * moving. The longest such allowance is what a test checks against the
 * timeout. One probe per process (tests run one probed server at a time);
 * the strategy the wait class goes with must give its requests the
 * strategy's wait class (every blocking strategy does; ss_coroutines
 * parks its coroutines instead).
 */
#ifndef SOCKSERV_TEST_SEND_PROBE_H
#define SOCKSERV_TEST_SEND_PROBE_H

#include <sockserv/strategy.h>

/* Forget what was seen (before starting the probed server). */
void test_send_probe_reset(void);

/* The transport to set with ss_server_set_transport(). */
const ss_transport *test_send_probe_transport(void);

/* *out = *base with the probe's wait class: pass out to ss_server_new(). */
void test_send_probe_strategy(ss_strategy *out, const ss_strategy *base);

/* The longest a wait to send was allowed to last past the last byte sent,
 * in seconds; -1 when no wait with a deadline followed a byte sent. */
double test_send_probe_longest_allowance(void);

/* Waits to send seen so far. */
int test_send_probe_waits(void);

#endif /* SOCKSERV_TEST_SEND_PROBE_H */
