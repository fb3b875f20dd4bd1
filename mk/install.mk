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
#   $(CMAKEDIR)/quiche_evConfig.cmake      find_package(quiche_ev): quiche_ev::quiche_ev
#   $(CMAKEDIR)/quiche_evConfigVersion.cmake  (shared), quiche_ev::quiche_ev_static
#   $(BINDIR)/quiche-ev-NAME               every program in $(EXAMPLES) (Makefile)
#
# On macOS the shared library is libquiche_ev.X.Y.Z.dylib, with the links
# libquiche_ev.$(ABI).dylib and libquiche_ev.dylib, and its install name
# becomes $(LIBDIR)/libquiche_ev.$(ABI).dylib (not run here: written from
# Apple's documentation, see README "Platforms").
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
CMAKEDIR ?= $(LIBDIR)/cmake/quiche_ev
INSTALL ?= install
STRIP ?= strip

# The installed headers, staged by `make` (tests/header.rs compiles them
# from here): the wrapper and quiche's own header, copied at build time so
# install needs no cargo to find it. quiche_ev.h itself is include/'s.
HEADERS := target/include/quiche.h target/include/upstream/quiche.h

# Cargo.toml's version (its [workspace.package]), read without cargo.
VERSION := $(shell sed -n '/^\[workspace\.package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' Cargo.toml)
VERSION_PARTS := $(subst ., ,$(VERSION))
# The ABI version (soname/build.rs's rule).
ABI := $(if $(filter 0,$(word 1,$(VERSION_PARTS))),0.$(word 2,$(VERSION_PARTS)),$(word 1,$(VERSION_PARTS)))

# The shared library's names: ELF (Linux, the BSDs) or Mach-O (macOS).
# SHLIB is built by cargo beside $(LIB) (crate-type cdylib).
ifeq ($(UNAME_S),Darwin)
SHLIB := target/release/libquiche_ev.dylib
SHLIB_FILE := libquiche_ev.$(VERSION).dylib
SONAME := libquiche_ev.$(ABI).dylib
SHLIB_DEV := libquiche_ev.dylib
# soname/build.rs links it with the install name @rpath/$(SONAME); the
# installed copy gets its absolute path (so programs find it without an
# rpath) and, modified, a new ad-hoc signature (arm64 refuses unsigned code).
check_soname = otool -D $(SHLIB) | grep -qx '@rpath/$(SONAME)'
set_install_name = install_name_tool -id $(LIBDIR)/$(SONAME) $(1) && \
  { ! command -v codesign >/dev/null || codesign --force --sign - $(1); }
strip_flags := -S
CMAKE_SONAME = $${_quiche_ev_libdir}/$(SONAME)
else
SHLIB := target/release/libquiche_ev.so
SHLIB_FILE := libquiche_ev.so.$(VERSION)
SONAME := libquiche_ev.so.$(ABI)
SHLIB_DEV := libquiche_ev.so
check_soname = readelf -d $(SHLIB) | grep -q 'Library soname: \[$(SONAME)\]'
set_install_name = :
strip_flags := --strip-debug
CMAKE_SONAME = $(SONAME)
endif

INSTALLED_EXAMPLES := $(patsubst c-examples/%,$(BINDIR)/quiche-ev-%,$(EXAMPLES))
INSTALLED := $(LIBDIR)/libquiche_ev.a $(LIBDIR)/$(SHLIB_FILE) \
  $(LIBDIR)/$(SONAME) $(LIBDIR)/$(SHLIB_DEV) \
  $(INCLUDEDIR)/quiche_ev/quiche_ev.h $(INCLUDEDIR)/quiche_ev/quiche.h \
  $(INCLUDEDIR)/quiche_ev/upstream/quiche.h \
  $(PKGCONFIGDIR)/quiche_ev.pc $(PKGCONFIGDIR)/quiche_ev-static.pc \
  $(CMAKEDIR)/quiche_evConfig.cmake $(CMAKEDIR)/quiche_evConfigVersion.cmake \
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

# The CMake files find everything relative to their own folder: PREFIX is
# "../" once per folder of CMAKEDIR below it (an absolute PREFIX when
# CMAKEDIR is elsewhere), and LIBDIR and INCLUDEDIR hang from it.
empty :=
space := $(empty) $(empty)
cmake_prefix = $(if $(filter $(PREFIX)/%,$(CMAKEDIR)),$${CMAKE_CURRENT_LIST_DIR}/$(subst $(space),/,$(foreach d,$(subst /, ,$(patsubst $(PREFIX)/%,%,$(CMAKEDIR))),..)),$(PREFIX))
cmake_path = $(patsubst $(PREFIX)/%,$${_quiche_ev_prefix}/%,$(1))
# The static archive's system libraries as a CMake list (libev is its own target).
CMAKE_STATIC_LIBS = $(subst $(space),;,$(patsubst -l%,%,$(filter-out -lev,$(NATIVE_LIBS))))

write_cmake = sed -e 's|@VERSION@|$(VERSION)|' -e 's|@ABI@|$(ABI)|' \
  -e 's|@PREFIX_FROM_HERE@|$(cmake_prefix)|' -e 's|@LIBDIR@|$(call cmake_path,$(LIBDIR))|' \
  -e 's|@INCLUDEDIR@|$(call cmake_path,$(INCLUDEDIR))|' -e 's|@SHLIB_FILE@|$(SHLIB_FILE)|' \
  -e 's|@SONAME@|$(CMAKE_SONAME)|' -e 's|@STATIC_LIBS@|$(CMAKE_STATIC_LIBS)|' \
  -e "s|@SIZEOF_VOID_P@|$$(( $$(getconf LONG_BIT) / 8 ))|" $(1) > $(2)

strip_debug = $(if $(filter 1,$(KEEP_DEBUG)),:,$(STRIP) $(strip_flags))

install:
	@for f in $(LIB) $(SHLIB) include/quiche_ev.h $(HEADERS) $(EXAMPLES); do \
	  test -e $$f || { echo "$$f is missing: run make first (make install only copies)" >&2; exit 1; }; \
	done
	@$(check_soname) || { \
	  echo "$(SHLIB) does not have the soname $(SONAME) (see soname/build.rs)" >&2; exit 1; }
	$(INSTALL) -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(PKGCONFIGDIR) $(DESTDIR)$(CMAKEDIR) \
	  $(DESTDIR)$(INCLUDEDIR)/quiche_ev/upstream $(DESTDIR)$(BINDIR)
	$(INSTALL) -m 644 $(LIB) $(DESTDIR)$(LIBDIR)/libquiche_ev.a
	$(INSTALL) -m 644 $(SHLIB) $(DESTDIR)$(LIBDIR)/$(SHLIB_FILE)
	ln -sfn $(SHLIB_FILE) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sfn $(SONAME) $(DESTDIR)$(LIBDIR)/$(SHLIB_DEV)
	$(INSTALL) -m 644 include/quiche_ev.h target/include/quiche.h $(DESTDIR)$(INCLUDEDIR)/quiche_ev/
	$(INSTALL) -m 644 target/include/upstream/quiche.h $(DESTDIR)$(INCLUDEDIR)/quiche_ev/upstream/
	$(call write_pc,$(DESTDIR)$(PKGCONFIGDIR)/quiche_ev.pc,quiche_ev,\
	  Event logic of the quiche C examples in Rust driven by libev; exports the quiche C API too,\
	  -L$${libdir} -lquiche_ev -lev,$(filter-out -lev,$(NATIVE_LIBS)))
	$(call write_pc,$(DESTDIR)$(PKGCONFIGDIR)/quiche_ev-static.pc,quiche_ev-static,\
	  quiche_ev linked statically (libquiche_ev.a),$${libdir}/libquiche_ev.a $(NATIVE_LIBS),)
	$(call write_cmake,mk/quiche_evConfig.cmake.in,$(DESTDIR)$(CMAKEDIR)/quiche_evConfig.cmake)
	$(call write_cmake,mk/quiche_evConfigVersion.cmake.in,$(DESTDIR)$(CMAKEDIR)/quiche_evConfigVersion.cmake)
	set -e; for f in $(EXAMPLES); do \
	  $(INSTALL) -m 755 $$f $(DESTDIR)$(BINDIR)/quiche-ev-$${f#c-examples/}; \
	done
	$(strip_debug) $(DESTDIR)$(LIBDIR)/libquiche_ev.a $(DESTDIR)$(LIBDIR)/$(SHLIB_FILE) \
	  $(addprefix $(DESTDIR),$(INSTALLED_EXAMPLES))
	$(call set_install_name,$(DESTDIR)$(LIBDIR)/$(SHLIB_FILE))

uninstall:
	rm -f $(addprefix $(DESTDIR),$(INSTALLED))
	rmdir $(DESTDIR)$(INCLUDEDIR)/quiche_ev/upstream $(DESTDIR)$(INCLUDEDIR)/quiche_ev \
	  $(DESTDIR)$(CMAKEDIR) 2>/dev/null || true
