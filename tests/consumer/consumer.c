/*
 * A program that uses an *installed* libsockserv, the way another project
 * would. CI builds it against a temporary install prefix in two ways —
 * through pkg-config and through find_package(sockserv) — so a missing
 * header, library, symlink, .pc entry or CMake export fails there, not on a
 * user's machine.
 *
 * It opens a TCP server on a port the system picks, prints that port and
 * frees the server: enough to link and call into the library for real.
 */
#include <sockserv/sockserv.h>

#include <stdio.h>

int main(void)
{
    ss_server *srv;
    int rc = ss_tcp_server_new(&srv, "127.0.0.1:0", &ss_stream_handler, NULL);
    if (rc < 0) {
        fprintf(stderr, "sockserv-consumer: cannot serve: %s\n",
                ss_strerror(rc));
        return 1;
    }

    int port = ss_server_port(srv);
    ss_server_free(srv);
    if (port <= 0) {
        fprintf(stderr, "sockserv-consumer: no port: %s\n",
                port < 0 ? ss_strerror(port) : "port 0");
        return 1;
    }

    printf("sockserv-consumer: libsockserv %d.%d.%d, bound 127.0.0.1:%d\n",
           SS_VERSION_MAJOR, SS_VERSION_MINOR, SS_VERSION_PATCH, port);
    return 0;
}
