/* Vivarium: what C++ exceptions come to in the numpy reactor.
 *
 * zig's libc++ for wasm32-wasi is built without exception support, and WASI preview 1 has no
 * unwinding, so a C++ `throw` cannot be caught. numpy's C++ code throws in a few places that
 * ordinary input does not reach (allocation failures inside its sort and unique helpers,
 * pocketfft's internal checks); those land here, print what happened and abort the call,
 * which the host reports as a crash of the action. Nothing else in the reactor is C++. */

#include <stdio.h>
#include <stdlib.h>

static void
abort_on_throw(void)
{
    fputs("vivarium: a C++ exception was thrown inside numpy; it cannot be caught on WASI, "
          "so the call is aborted\n",
          stderr);
    fflush(stderr);
    abort();
}

void *
__cxa_allocate_exception(unsigned long size)
{
    (void)size;
    abort_on_throw();
    return NULL;
}

void
__cxa_throw(void *exception, void *type, void (*destructor)(void *))
{
    (void)exception;
    (void)type;
    (void)destructor;
    abort_on_throw();
}
