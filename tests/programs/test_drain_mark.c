/*
 * test_drain_mark.c — sockserv-httpd's drain mark
 * (examples/httpserver/drain_mark.c): "has a read of the inotify queue
 * that began after this arrival been applied?", with the realtime clock
 * stepped under it.
 *
 * drain_mark.c is compiled into this test with its clock_gettime() calls
 * renamed to test_clock_gettime() (tests/programs/CMakeLists.txt), which
 * reads the real clock and adds a step of the test's choosing to
 * CLOCK_REALTIME. So the test can step the clock back or forth between a
 * drain and a question without touching the machine's.
 */
#include <stdint.h>
#include <time.h>

#include "drain_mark.h"
#include "support.h"

static int64_t realtime_step_ns; /* added to every CLOCK_REALTIME reading */

int test_clock_gettime(clockid_t clock, struct timespec *ts);
int test_clock_gettime(clockid_t clock, struct timespec *ts)
{
    int rc = clock_gettime(clock, ts);
    if (rc == 0 && clock == CLOCK_REALTIME && realtime_step_ns != 0) {
        int64_t ns =
            (int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec + realtime_step_ns;
        ts->tv_sec = (time_t)(ns / 1000000000);
        ts->tv_nsec = (long)(ns % 1000000000);
    }
    return rc;
}

#define US 1000LL
#define MS 1000000LL

/* A drain that began now (as the cache's does, before reading the queue)
 * and completed. Returns when it began, on the (stepped) realtime clock. */
static int64_t drain_now(drain_mark *m)
{
    drain_start s;
    for (int i = 0; i < 100; i++) { /* a preempted reading is refused */
        s = drain_mark_begin();
        if (s.real_ns != 0)
            break;
    }
    assert_true(s.real_ns != 0);
    drain_mark_publish(m, s);
    return s.real_ns;
}

static int setup(void **state)
{
    (void)state;
    realtime_step_ns = 0;
    return 0;
}

static void test_unknown_arrival_is_never_covered(void **state)
{
    (void)state;
    drain_mark m;
    drain_mark_init(&m);
    drain_now(&m);
    assert_false(drain_mark_covers(&m, 0));
    assert_false(drain_mark_covers(&m, -1));
}

static void test_no_drain_yet_covers_nothing(void **state)
{
    (void)state;
    drain_mark m;
    drain_mark_init(&m);
    assert_false(drain_mark_covers(&m, 1 * MS));
}

static void test_arrival_before_the_drain_is_covered(void **state)
{
    (void)state;
    drain_mark m;
    drain_mark_init(&m);
    int64_t began = drain_now(&m);
    assert_true(drain_mark_covers(&m, began - 1 * MS));
    /* Within the margin (10 µs), and after the drain: not covered. */
    assert_false(drain_mark_covers(&m, began - 5 * US));
    assert_false(drain_mark_covers(&m, began));
    assert_false(drain_mark_covers(&m, began + 1 * MS));
}

/* A drain whose clock reading was interrupted is no mark: the one before
 * it is not kept either, since a reader cannot tell them apart. */
static void test_an_interrupted_start_covers_nothing(void **state)
{
    (void)state;
    drain_mark m;
    drain_mark_init(&m);
    int64_t began = drain_now(&m);
    drain_start none = {.real_ns = 0, .offset_ns = 0};
    drain_mark_publish(&m, none);
    assert_false(drain_mark_covers(&m, began - 1 * MS));
}

/* The clock stepped back after the drain: an arrival stamped after the
 * step may read earlier than the drain although it came later. The mark
 * must refuse, whatever the arrival reads. */
static void test_backward_step_after_the_drain_is_refused(void **state)
{
    (void)state;
    drain_mark m;
    drain_mark_init(&m);
    int64_t began = drain_now(&m);
    realtime_step_ns = -50 * US;
    assert_false(drain_mark_covers(&m, began - 1 * MS));
    realtime_step_ns = -3600 * 1000 * MS; /* an hour back */
    assert_false(drain_mark_covers(&m, began - 1 * MS));
    /* A later drain, measured on the stepped clock, is a mark again. */
    int64_t again = drain_now(&m);
    assert_true(drain_mark_covers(&m, again - 1 * MS));
}

/* A step forward after the drain cannot make an arrival look earlier
 * than the drain (it makes later ones look later still), so it changes
 * nothing. */
static void test_forward_step_after_the_drain_is_harmless(void **state)
{
    (void)state;
    drain_mark m;
    drain_mark_init(&m);
    int64_t began = drain_now(&m);
    realtime_step_ns = 50 * MS;
    assert_true(drain_mark_covers(&m, began - 1 * MS));
    assert_false(drain_mark_covers(&m, began + 1 * MS));
}

/* A step before the drain is in both readings: no effect. */
static void test_step_before_the_drain_is_harmless(void **state)
{
    (void)state;
    drain_mark m;
    drain_mark_init(&m);
    realtime_step_ns = -50 * MS;
    int64_t began = drain_now(&m);
    assert_true(drain_mark_covers(&m, began - 1 * MS));
    assert_false(drain_mark_covers(&m, began + 1 * MS));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_unknown_arrival_is_never_covered, setup),
        cmocka_unit_test_setup(test_no_drain_yet_covers_nothing, setup),
        cmocka_unit_test_setup(test_arrival_before_the_drain_is_covered, setup),
        cmocka_unit_test_setup(test_an_interrupted_start_covers_nothing, setup),
        cmocka_unit_test_setup(test_backward_step_after_the_drain_is_refused,
                               setup),
        cmocka_unit_test_setup(test_forward_step_after_the_drain_is_harmless,
                               setup),
        cmocka_unit_test_setup(test_step_before_the_drain_is_harmless, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
