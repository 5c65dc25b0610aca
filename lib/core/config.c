/*
 * config.c — the defaults of ss_config, which are Python's where Python
 * has one (see the field comments in sockserv.h for where we differ).
 */
#include <string.h>
#include <unistd.h>

#include "internal.h"

#define SS__DEFAULT_MAX_PACKET_SIZE 8192

int ss__cpu_count(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

void ss_config_init(ss_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->request_queue_size = SOMAXCONN;
    cfg->allow_reuse_address = false;
    cfg->allow_reuse_port = false;
    cfg->bind_and_activate = true;
    cfg->ipv6_only = false;
    cfg->timeout = 0;
    cfg->max_packet_size = SS__DEFAULT_MAX_PACKET_SIZE;
    cfg->unlink_on_close = false;
    cfg->max_children = 40;
    cfg->block_on_close = true;
    cfg->daemon_threads = false;
    cfg->graceful_timeout = 10;
    cfg->prefork_reuseport = false;
    cfg->shutdown_grace = 5;
    cfg->coro_overflow_report = true;
    cfg->proxy_protocol_timeout = 5;
}
