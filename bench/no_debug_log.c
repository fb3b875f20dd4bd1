/* Used by mk/bench.mk to build upstream's server.c with quiche's debug log
 * off: the build renames upstream's call to quiche_enable_debug_logging()
 * (-Dquiche_enable_debug_logging=bench_no_debug_logging) and this stub
 * takes it, so the baseline does not spend its CPU formatting trace lines
 * (our programs run with QUICHE_EV_QUIET=1 in the benchmark). */
int bench_no_debug_logging(void (*cb)(const char *line, void *argp), void *argp);

int bench_no_debug_logging(void (*cb)(const char *line, void *argp), void *argp) {
    (void) cb;
    (void) argp;
    return 0;
}
