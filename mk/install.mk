# `make install` / `make uninstall` (issue "Observability and packaging").
#
#   make                                   build (as yourself: cargo runs here)
#   make install [PREFIX=/usr/local] [DESTDIR=/stage] [KEEP_DEBUG=1]
#   make uninstall [PREFIX=...] [DESTDIR=...]   removes exactly what install wrote
#
# install only copies what `make` built and never runs cargo, so it works
# under sudo, where cargo is usually not on the PATH; it names anything
# missing. What it writes (each directory variable can be overridden):
#
#   $(LIBDIR)/libquiche_ev.a
#   $(LIBDIR)/libquiche_ev.so.X.Y.Z        the shared library, X.Y.Z = Cargo.toml's version
#   $(LIBDIR)/$(SONAME) -> libquiche_ev.so.X.Y.Z
#   $(LIBDIR)/libquiche_ev.so -> $(SONAME)  for -lquiche_ev
#   $(INCLUDEDIR)/quiche_ev/quiche_ev.h
#   $(INCLUDEDIR)/quiche_ev/quiche.h       mk/quiche.h: includes <sched.h> (struct
#                                          timespec), then upstream/quiche.h, so the
#                                          headers compile in any include order
#   $(INCLUDEDIR)/quiche_ev/upstream/quiche.h   quiche.h of the pinned quiche, which
#                                          the library exports, unchanged (a folder of
#                                          our own: a system quiche.h is neither used
#                                          nor overwritten)
#   $(PKGCONFIGDIR)/quiche_ev.pc           shared linking (static with --static, see README)
#   $(PKGCONFIGDIR)/quiche_ev-static.pc    static linking of libquiche_ev.a
#   $(BINDIR)/quiche-ev-NAME               every program in $(EXAMPLES) (Makefile)
#
# The soname follows Cargo's semver: libquiche_ev.so.MAJOR, or
# libquiche_ev.so.0.MINOR while MAJOR is 0 (0.1 -> 0.2 may break the ABI).
# soname/build.rs gives the library that name; SONAME below names the link,
# and install checks that the two agree.
#
# Installed binaries and libraries lose their debug info (strip
# --strip-debug; symbol names stay for backtraces and profilers); the build
# tree keeps it for make valgrind, make asan and gdb. KEEP_DEBUG=1 installs
# them as built, for packagers who split debug info themselves.

.PHONY: install uninstall headers

PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
INSTALL ?= install
STRIP ?= strip

# Built by cargo beside $(LIB) (crate-type cdylib).
SHLIB := target/release/libquiche_ev.so
# The installed headers, staged by `make` (tests/header.rs compiles them
# from here): the wrapper and quiche's own header, copied at build time so
# install needs no cargo to find it. quiche_ev.h itself is include/'s.
HEADERS := target/include/quiche.h target/include/upstream/quiche.h

# Cargo.toml's version (its [workspace.package]), read without cargo.
VERSION := $(shell sed -n '/^\[workspace\.package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' Cargo.toml)
VERSION_PARTS := $(subst ., ,$(VERSION))
SONAME := libquiche_ev.so.$(if $(filter 0,$(word 1,$(VERSION_PARTS))),0.$(word 2,$(VERSION_PARTS)),$(word 1,$(VERSION_PARTS)))

INSTALLED_EXAMPLES := $(patsubst c-examples/%,$(BINDIR)/quiche-ev-%,$(EXAMPLES))
INSTALLED := $(LIBDIR)/libquiche_ev.a $(LIBDIR)/libquiche_ev.so.$(VERSION) \
  $(LIBDIR)/$(SONAME) $(LIBDIR)/libquiche_ev.so \
  $(INCLUDEDIR)/quiche_ev/quiche_ev.h $(INCLUDEDIR)/quiche_ev/quiche.h \
  $(INCLUDEDIR)/quiche_ev/upstream/quiche.h \
  $(PKGCONFIGDIR)/quiche_ev.pc $(PKGCONFIGDIR)/quiche_ev-static.pc \
  $(INSTALLED_EXAMPLES)

# `make` stages the headers too; Cargo.lock pins quiche's version.
all: headers
headers: $(HEADERS)

target/include/upstream/quiche.h: Cargo.lock
	@mkdir -p $(@D)
	cp $(QUICHE_DIR)/include/quiche.h $@

target/include/quiche.h: mk/quiche.h
	@mkdir -p $(@D)
	cp mk/quiche.h $@

# A path under PREFIX as ${prefix}/..., so that pkg-config --define-prefix
# can relocate the file.
pc_path = $(patsubst $(PREFIX)/%,$${prefix}/%,$(1))

# $(call write_pc,FILE,NAME,DESCRIPTION,LIBS,LIBS_PRIVATE): mk/pkgconfig.pc.in
# filled in (no commas or quotes in the arguments).
write_pc = sed -e 's|@prefix@|$(PREFIX)|' -e 's|@libdir@|$(call pc_path,$(LIBDIR))|' \
  -e 's|@includedir@|$(call pc_path,$(INCLUDEDIR))|' -e 's|@name@|$(strip $(2))|' \
  -e 's|@description@|$(strip $(3))|' -e 's|@version@|$(VERSION)|' -e 's|@libs@|$(strip $(4))|' \
  -e 's|@libs_private@|$(strip $(5))|' mk/pkgconfig.pc.in > $(1)

strip_debug = $(if $(filter 1,$(KEEP_DEBUG)),:,$(STRIP) --strip-debug)

install:
	@for f in $(LIB) $(SHLIB) include/quiche_ev.h $(HEADERS) $(EXAMPLES); do \
	  test -e $$f || { echo "$$f is missing: run make first (make install only copies)" >&2; exit 1; }; \
	done
	@readelf -d $(SHLIB) | grep -q 'Library soname: \[$(SONAME)\]' || { \
	  echo "$(SHLIB) does not have the soname $(SONAME) (see soname/build.rs)" >&2; exit 1; }
	$(INSTALL) -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(PKGCONFIGDIR) $(DESTDIR)$(INCLUDEDIR)/quiche_ev/upstream $(DESTDIR)$(BINDIR)
	$(INSTALL) -m 644 $(LIB) $(DESTDIR)$(LIBDIR)/libquiche_ev.a
	$(INSTALL) -m 644 $(SHLIB) $(DESTDIR)$(LIBDIR)/libquiche_ev.so.$(VERSION)
	ln -sfn libquiche_ev.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sfn $(SONAME) $(DESTDIR)$(LIBDIR)/libquiche_ev.so
	$(INSTALL) -m 644 include/quiche_ev.h target/include/quiche.h $(DESTDIR)$(INCLUDEDIR)/quiche_ev/
	$(INSTALL) -m 644 target/include/upstream/quiche.h $(DESTDIR)$(INCLUDEDIR)/quiche_ev/upstream/
	$(call write_pc,$(DESTDIR)$(PKGCONFIGDIR)/quiche_ev.pc,quiche_ev,\
	  Event logic of the quiche C examples in Rust driven by libev; exports the quiche C API too,\
	  -L$${libdir} -lquiche_ev -lev,$(filter-out -lev,$(NATIVE_LIBS)))
	$(call write_pc,$(DESTDIR)$(PKGCONFIGDIR)/quiche_ev-static.pc,quiche_ev-static,\
	  quiche_ev linked statically (libquiche_ev.a),$${libdir}/libquiche_ev.a $(NATIVE_LIBS),)
	set -e; for f in $(EXAMPLES); do \
	  $(INSTALL) -m 755 $$f $(DESTDIR)$(BINDIR)/quiche-ev-$${f#c-examples/}; \
	done
	$(strip_debug) $(DESTDIR)$(LIBDIR)/libquiche_ev.a $(DESTDIR)$(LIBDIR)/libquiche_ev.so.$(VERSION) \
	  $(addprefix $(DESTDIR),$(INSTALLED_EXAMPLES))

uninstall:
	rm -f $(addprefix $(DESTDIR),$(INSTALLED))
	rmdir $(DESTDIR)$(INCLUDEDIR)/quiche_ev/upstream $(DESTDIR)$(INCLUDEDIR)/quiche_ev 2>/dev/null || true
