/* ALSA reports its problems (a machine without a sound card has several at every start) through a
 * printf-like handler that writes to stderr unless one is set. Rust cannot define a C variadic function
 * on stable, so this one formats the message and hands it to a sink that Rust sets, which logs it. */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

typedef void (*dialtone_alsa_sink)(const char *file, int line, const char *function, int err, const char *message);

static dialtone_alsa_sink sink = NULL;

void dialtone_alsa_set_sink(dialtone_alsa_sink new_sink) { sink = new_sink; }

void dialtone_alsa_error_handler(const char *file, int line, const char *function, int err, const char *fmt, ...) {
    char message[512];
    va_list args;
    va_start(args, fmt);
    vsnprintf(message, sizeof message, fmt, args);
    va_end(args);
    if (sink != NULL) {
        sink(file, line, function, err, message);
    }
}
