/*
 * combined.c — one-call constructors for Python's combined classes
 * (ThreadingTCPServer = ThreadingMixIn + TCPServer, and so on). Each is
 * ss_server_new() with a kind and a strategy; nothing here is special.
 */
#include "internal.h"

#define SS_COMBINED(function, kind, strategy)                                  \
    int function(ss_server **out, const char *address,                         \
                 const ss_handler_class *handler, const ss_config *cfg)        \
    {                                                                          \
        return ss_server_new(out, &kind, &strategy, address, handler, cfg);    \
    }

SS_COMBINED(ss_tcp_server_new, ss_tcp, ss_sync)
SS_COMBINED(ss_udp_server_new, ss_udp, ss_sync)
SS_COMBINED(ss_unix_stream_server_new, ss_unix_stream, ss_sync)
SS_COMBINED(ss_unix_datagram_server_new, ss_unix_datagram, ss_sync)
SS_COMBINED(ss_threading_tcp_server_new, ss_tcp, ss_threading)
SS_COMBINED(ss_threading_udp_server_new, ss_udp, ss_threading)
SS_COMBINED(ss_threading_unix_stream_server_new, ss_unix_stream, ss_threading)
SS_COMBINED(ss_threading_unix_datagram_server_new, ss_unix_datagram,
            ss_threading)
SS_COMBINED(ss_forking_tcp_server_new, ss_tcp, ss_forking)
SS_COMBINED(ss_forking_udp_server_new, ss_udp, ss_forking)
SS_COMBINED(ss_forking_unix_stream_server_new, ss_unix_stream, ss_forking)
SS_COMBINED(ss_forking_unix_datagram_server_new, ss_unix_datagram, ss_forking)
