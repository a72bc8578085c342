/*
 * Name-service stubs for wasm32-wasip1 (linked into python.wasm and vivarium-python.wasm).
 *
 * WASI preview 1 has no name service, and the wasi-libc that zig carries declares the netdb
 * functions (its headers are musl's) without defining them. CPython's _socket module calls
 * them from its fallback getaddrinfo()/getnameinfo(), so without definitions `socket` (and
 * with it email.utils, logging.handlers, urllib.request, http.client...) cannot be built.
 * The sandbox has no network anyway: every lookup answers "not found", as a host without
 * any name database would. Numeric addresses still work (CPython's fallbacks parse them).
 */

#include <netdb.h>
#include <stddef.h>

static int vivarium_h_errno;

int *
__h_errno_location(void)
{
    return &vivarium_h_errno;
}

struct hostent *
gethostbyname(const char *name)
{
    (void)name;
    h_errno = HOST_NOT_FOUND;
    return NULL;
}

struct hostent *
gethostbyaddr(const void *addr, socklen_t length, int family)
{
    (void)addr;
    (void)length;
    (void)family;
    h_errno = HOST_NOT_FOUND;
    return NULL;
}

struct servent *
getservbyname(const char *name, const char *protocol)
{
    (void)name;
    (void)protocol;
    return NULL;
}

struct servent *
getservbyport(int port, const char *protocol)
{
    (void)port;
    (void)protocol;
    return NULL;
}

struct protoent *
getprotobyname(const char *name)
{
    (void)name;
    return NULL;
}

const char *
hstrerror(int code)
{
    return code == HOST_NOT_FOUND ? "Unknown host (no name service on WASI)"
                                  : "Name service error (no name service on WASI)";
}
