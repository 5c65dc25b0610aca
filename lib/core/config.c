/*
 * config.c — the defaults of ss_config, which are Python's where Python
 * has one (see the field comments in sockserv.h for where we differ).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "internal.h"

#define DEFAULT_MAX_PACKET_SIZE 8192
#define DEFAULT_SHUTDOWN_GRACE 5.0
#define DEFAULT_PROXY_PROTOCOL_TIMEOUT 5.0
/* Datagrams bigger than this cannot exist on any socket we create. */
#define MAX_PACKET_SIZE_LIMIT ((size_t)16 << 20)

int ss_cpu_count(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

void ss_config_init(ss_config *cfg)
{
    /* Every default is zero (request_queue_size 0 = SOMAXCONN, and so on:
     * ss__config_resolve fills them in the server's copy). */
    memset(cfg, 0, sizeof *cfg);
}

int ss__config_refuse(const ss_server *srv, const char *field, const char *why)
{
    char line[256];
    snprintf(line, sizeof line, "sockserv: %s: %s", field, why);
    ss_server_log(srv, line);
    return -EINVAL;
}

static bool seconds_in_range(double s, double max)
{
    return isfinite(s) && s >= 0 && s <= max;
}

int ss__config_resolve(ss_server *srv)
{
    ss_config *cfg = &srv->config;
    if (cfg->request_queue_size < 0)
        return ss__config_refuse(srv, "ss_config.request_queue_size",
                                 "must not be negative (0: SOMAXCONN)");
    if (!seconds_in_range(cfg->timeout, 1e9))
        return ss__config_refuse(srv, "ss_config.timeout",
                                 "must be 0 (none) or positive seconds");
    if (cfg->max_packet_size > MAX_PACKET_SIZE_LIMIT)
        return ss__config_refuse(srv, "ss_config.max_packet_size",
                                 "at most 16 MiB (0: 8192)");
    if (!(cfg->shutdown_grace <= 1e6) || isnan(cfg->shutdown_grace))
        return ss__config_refuse(srv, "ss_config.shutdown_grace",
                                 "at most 1e6 seconds (0: 5 s; "
                                 "SS_NO_GRACE: none)");
    if (cfg->max_connections < 0)
        return ss__config_refuse(srv, "ss_config.max_connections",
                                 "must not be negative (0: no limit)");
    if (cfg->max_connections_per_client < 0)
        return ss__config_refuse(srv, "ss_config.max_connections_per_client",
                                 "must not be negative (0: no limit)");
    if (!seconds_in_range(cfg->defer_accept, 3600))
        return ss__config_refuse(srv, "ss_config.defer_accept",
                                 "must be 0 (off) or positive seconds, at "
                                 "most 3600");
    if (!seconds_in_range(cfg->proxy_protocol_timeout, 1e6))
        return ss__config_refuse(srv, "ss_config.proxy_protocol_timeout",
                                 "must be positive and at most 1e6 seconds "
                                 "(0: 5 s)");

    if (cfg->request_queue_size == 0)
        cfg->request_queue_size = SOMAXCONN;
    if (cfg->max_packet_size == 0)
        cfg->max_packet_size = DEFAULT_MAX_PACKET_SIZE;
    if (cfg->shutdown_grace == 0)
        cfg->shutdown_grace = DEFAULT_SHUTDOWN_GRACE;
    else if (cfg->shutdown_grace < 0)
        cfg->shutdown_grace = 0; /* SS_NO_GRACE */
    if (cfg->proxy_protocol_timeout == 0)
        cfg->proxy_protocol_timeout = DEFAULT_PROXY_PROTOCOL_TIMEOUT;
    return 0;
}
