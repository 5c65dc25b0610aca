/*
 * inet.c — the IP server kinds: ss_tcp (TCPServer) and ss_udp (UDPServer).
 *
 * Both take IPv4 or IPv6 from the address, so IPv6 needs no subclass
 * (Python needs address_family = AF_INET6). The bodies are shared with the
 * Unix kinds in socket_kind.c; what makes a kind is this table.
 */
#include "internal.h"

const ss_server_class ss_tcp = {
    .name = "TCPServer",
    .family = AF_UNSPEC,
    .socket_type = SOCK_STREAM,
    .server_bind = ss__server_bind_socket,
    .server_activate = ss__stream_server_activate,
    .get_request = ss__stream_get_request,
    .verify_request = ss__default_verify_request,
    .finish_request = ss__default_finish_request,
    .handle_error = ss__default_handle_error,
    .handle_timeout = ss__default_handle_timeout,
    .service_actions = ss__default_service_actions,
    .shutdown_request = ss__stream_shutdown_request,
    .close_request = ss__stream_close_request,
};

const ss_server_class ss_udp = {
    .name = "UDPServer",
    .family = AF_UNSPEC,
    .socket_type = SOCK_DGRAM,
    .server_bind = ss__server_bind_socket,
    .server_activate = ss__datagram_server_activate,
    .get_request = ss__datagram_get_request,
    .verify_request = ss__default_verify_request,
    .finish_request = ss__default_finish_request,
    .handle_error = ss__default_handle_error,
    .handle_timeout = ss__default_handle_timeout,
    .service_actions = ss__default_service_actions,
    /* Python's UDPServer.shutdown_request only closes: no connection. */
    .shutdown_request = ss__datagram_close_request,
    .close_request = ss__datagram_close_request,
};
