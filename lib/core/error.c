/*
 * error.c — turning the library's error values into text.
 *
 * Every fallible function returns a negative errno value (or SS_EOF), so one
 * lookup covers them all. strerrordesc_np() returns static strings, which
 * keeps ss_strerror() thread-safe without a buffer from the caller.
 */
#include <errno.h>
#include <limits.h>
#include <string.h>

#include "internal.h"

const char *ss_strerror(int error)
{
    if (error == SS_EOF)
        return "End of stream before the expected data";
    if (error == SS_PARK)
        return "Parked until input arrives (not an error)";
    if (error == SS_SHUTDOWN)
        return "The server is shutting down";
    if (error == -4092) /* SS_WS_CLOSED, sockserv/websocket.h */
        return "The WebSocket connection is closed";
    if (error == 0)
        return "Success";
    if (error == INT_MIN)
        return "Unknown error";
    if (error < 0)
        error = -error;
    const char *text = strerrordesc_np(error);
    return text ? text : "Unknown error";
}
