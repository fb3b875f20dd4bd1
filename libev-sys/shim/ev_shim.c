/* Wrappers for the parts of libev's API that are macros in ev.h, plus the
 * struct layout facts that the Rust side checks its definitions against. */

#include <stddef.h>
#include <ev.h>

void libev_sys_io_init(ev_io *w, void (*cb)(struct ev_loop *, ev_io *, int),
                       int fd, int events) {
    ev_io_init(w, cb, fd, events);
}

void libev_sys_timer_init(ev_timer *w,
                          void (*cb)(struct ev_loop *, ev_timer *, int),
                          ev_tstamp after, ev_tstamp repeat) {
    ev_timer_init(w, cb, after, repeat);
}

void libev_sys_timer_set(ev_timer *w, ev_tstamp after, ev_tstamp repeat) {
    ev_timer_set(w, after, repeat);
}

void libev_sys_signal_init(ev_signal *w,
                           void (*cb)(struct ev_loop *, ev_signal *, int),
                           int signum) {
    ev_signal_init(w, cb, signum);
}

void libev_sys_async_init(ev_async *w, void (*cb)(struct ev_loop *, ev_async *, int)) {
    ev_async_init(w, cb);
}

void libev_sys_prepare_init(ev_prepare *w, void (*cb)(struct ev_loop *, ev_prepare *, int)) {
    ev_prepare_init(w, cb);
}

int libev_sys_is_active(const void *w) {
    return ev_is_active((const ev_watcher *) w);
}

int libev_sys_is_pending(const void *w) {
    return ev_is_pending((const ev_watcher *) w);
}

/* Layout report: index -> value, -1 past the end. */
long libev_sys_layout(int what) {
    switch (what) {
    case 0: return (long) sizeof(ev_io);
    case 1: return (long) offsetof(ev_io, data);
    case 2: return (long) offsetof(ev_io, cb);
    case 3: return (long) offsetof(ev_io, fd);
    case 4: return (long) offsetof(ev_io, events);
    case 5: return (long) sizeof(ev_timer);
    case 6: return (long) offsetof(ev_timer, data);
    case 7: return (long) offsetof(ev_timer, cb);
    case 8: return (long) offsetof(ev_timer, at);
    case 9: return (long) offsetof(ev_timer, repeat);
    case 10: return (long) sizeof(ev_signal);
    case 11: return (long) offsetof(ev_signal, data);
    case 12: return (long) offsetof(ev_signal, cb);
    case 13: return (long) offsetof(ev_signal, signum);
    case 14: return (long) offsetof(ev_io, next);
    case 15: return (long) offsetof(ev_signal, next);
    case 16: return (long) sizeof(ev_async);
    case 17: return (long) offsetof(ev_async, data);
    case 18: return (long) offsetof(ev_async, cb);
    case 19: return (long) offsetof(ev_async, sent);
    case 20: return (long) sizeof(ev_prepare);
    case 21: return (long) offsetof(ev_prepare, data);
    case 22: return (long) offsetof(ev_prepare, cb);
    default: return -1;
    }
}
