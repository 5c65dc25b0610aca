/*
 * unix.c — the Unix-domain server kinds: ss_unix_stream
 * (UnixStreamServer) and ss_unix_datagram (UnixDatagramServer).
 *
 * The one thing they add to the shared bodies: remembering that bind()
 * created a socket file, so ss_server_close() can remove it when the user
 * asked for unlink_on_close (Python never removes it). Abstract names
 * ("unix:@name") live in no file system and need no removal.
 */
#include <sys/un.h>

#include "internal.h"

static int unix_server_bind(ss_server *srv)
{
    int rc = ss__server_bind_socket(srv);
    if (rc < 0)
        return rc;
    const struct sockaddr_un *un = (const struct sockaddr_un *)&srv->address;
    srv->unlink_path =
        srv->address_len > offsetof(struct sockaddr_un, sun_path) &&
        un->sun_path[0] != '\0';
    return 0;
}

const ss_server_class ss_unix_stream = {
    .name = "UnixStreamServer",
    .family = AF_UNIX,
    .socket_type = SOCK_STREAM,
    .server_bind = unix_server_bind,
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

const ss_server_class ss_unix_datagram = {
    .name = "UnixDatagramServer",
    .family = AF_UNIX,
    .socket_type = SOCK_DGRAM,
    .server_bind = unix_server_bind,
    .server_activate = ss__datagram_server_activate,
    .get_request = ss__datagram_get_request,
    .verify_request = ss__default_verify_request,
    .finish_request = ss__default_finish_request,
    .handle_error = ss__default_handle_error,
    .handle_timeout = ss__default_handle_timeout,
    .service_actions = ss__default_service_actions,
    .shutdown_request = ss__datagram_close_request,
    .close_request = ss__datagram_close_request,
};
