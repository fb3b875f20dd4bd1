//! `make install` / `make uninstall` (mk/install.mk): the installed library,
//! headers and pkg-config files are enough to build a C program, linked
//! statically and shared, that talks to our server; so is the CMake
//! package (find_package(quiche_ev), both imported targets), whose version
//! file accepts only the same ABI; the installed headers compile with
//! quiche.h first in strict C; the shared library has its soname, exports
//! the whole C API (ours and quiche's) and links libev dynamically;
//! installed files carry no debug info; DESTDIR stages under PREFIX (the
//! CMake package relocates with the tree); uninstall leaves no file of
//! ours.
//!
//! `make` must have run (as `make test` does): install only copies.

mod common;
use common::*;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The soname rule of soname/build.rs, from Cargo.toml's version.
fn soname() -> String {
    match env!("CARGO_PKG_VERSION_MAJOR") {
        "0" => format!("libquiche_ev.so.0.{}", env!("CARGO_PKG_VERSION_MINOR")),
        major => format!("libquiche_ev.so.{major}"),
    }
}

/// The program built against the installed copy. The client part is
/// `fetch()`: quiche's config calls, the loop and the socket watcher
/// (`quiche_ev_client_recv_cb`), one `quiche_ev_client_request` whose body
/// the response callbacks print, and the closed callback that ends the
/// loop.
const APP: &str = r#"/* Built by tests/install.rs with nothing but pkg-config's flags. Prints
 * the versions, the libquiche_ev files mapped into the process, then the
 * body of /index.html from HOST PORT (hq-interop). */
#include <quiche_ev.h>

#include <fcntl.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* One "loaded: PATH" line per libquiche_ev file mapped: the shared library
 * when linked against it, none when linked statically. */
static void print_loaded(void) {
    char line[4096], last[4096] = "";
    FILE *maps = fopen("/proc/self/maps", "r");
    while (maps != NULL && fgets(line, sizeof(line), maps) != NULL) {
        char *path = strchr(line, '/');
        if (path != NULL && strstr(path, "libquiche_ev") != NULL && strcmp(path, last) != 0) {
            printf("loaded: %s", path);
            strcpy(last, path);
        }
    }
    if (maps != NULL) {
        fclose(maps);
    }
}

static size_t on_body(quiche_ev_client *c, int64_t id, const uint8_t *data, size_t len, void *user) {
    (void) c; (void) id; (void) user;
    return fwrite(data, 1, len, stdout);
}

static void on_done(quiche_ev_client *c, int64_t id, int outcome, uint64_t code, void *user) {
    (void) id; (void) code;
    *(int *) user = outcome == QUICHE_EV_RESPONSE_COMPLETE ? 0 : 1;
    quiche_ev_client_close(c, 0, NULL);
}

static void on_closed(quiche_ev_client *c, int state, void *user) {
    (void) c; (void) state;
    ev_break((struct ev_loop *) user, EVBREAK_ALL);
}

/* The client: an hq-interop GET of /index.html; 0 when the whole body arrived. */
static int fetch(const char *host, const char *port) {
    struct addrinfo hints, *peer;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_DGRAM;
    if (getaddrinfo(host, port, &hints, &peer) != 0) {
        return 2;
    }
    int sock = socket(peer->ai_family, SOCK_DGRAM, 0);
    if (sock < 0 || fcntl(sock, F_SETFL, O_NONBLOCK) != 0) {
        return 2;
    }

    quiche_config *config = quiche_config_new(QUICHE_PROTOCOL_VERSION);
    quiche_config_set_application_protos(config, (const uint8_t *) "\x0ahq-interop", 11);
    quiche_config_set_max_idle_timeout(config, 5000);
    quiche_config_set_initial_max_data(config, 1000000);
    quiche_config_set_initial_max_stream_data_bidi_local(config, 1000000);

    struct ev_loop *loop = ev_default_loop(0);
    quiche_ev_client *client = quiche_ev_client_new(loop, sock, host, peer->ai_addr,
                                                    peer->ai_addrlen, config, NULL);
    int status = 2;
    if (client != NULL) {
        quiche_ev_client_set_user_data(client, loop);
        quiche_ev_client_on_closed(client, on_closed);
        quiche_ev_client_on_response(client, NULL, on_body, on_done);
        quiche_ev_client_request(client, "GET", "/index.html", NULL, 0, NULL, 0, &status);
        ev_io watcher;
        ev_io_init(&watcher, quiche_ev_client_recv_cb, sock, EV_READ);
        watcher.data = client;
        ev_io_start(loop, &watcher);
        ev_run(loop, 0);
        quiche_ev_client_free(client);
    }
    quiche_config_free(config);
    close(sock);
    freeaddrinfo(peer);
    return status;
}

int main(int argc, char *argv[]) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s HOST PORT\n", argv[0]);
        return 2;
    }
    printf("versions: %s %s %s %s\n", quiche_ev_version(), QUICHE_EV_VERSION,
           quiche_ev_quiche_version(), (const char *) quiche_version());
    print_loaded();
    fflush(stdout);
    return fetch(argv[1], argv[2]);
}
"#;

/// A fresh folder whose path make and pkg-config take as is (no
/// parentheses or spaces, unlike common::tempdir's).
fn scratch(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("quiche-ev-install-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Runs `cmd`; its stdout, or a panic with both outputs.
fn output(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?} failed ({}):\n{}\n{}", out.status,
            String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn make(target: &str, vars: &[(&str, &Path)], extra: &[&str]) -> String {
    let mut cmd = Command::new("make");
    cmd.current_dir(root()).args(["--no-print-directory", target]).args(extra);
    for (k, v) in vars {
        cmd.arg(format!("{k}={}", v.display()));
    }
    output(&mut cmd)
}

/// `pkg-config ARGS` with only `pcdir` on its search path, split into
/// arguments for the compiler.
fn pkg_config(pcdir: &Path, args: &[&str]) -> Vec<String> {
    let out = output(Command::new("pkg-config").env("PKG_CONFIG_PATH", pcdir).env_remove("PKG_CONFIG_SYSROOT_DIR").args(args));
    out.split_whitespace().map(String::from).collect()
}

fn compile(dir: &Path, name: &str, src: &Path, flags: &[String]) -> PathBuf {
    let exe = dir.join(name);
    output(Command::new("cc").args(["-Wall", "-Wextra", "-Werror", "-o"]).arg(&exe).arg(src).args(flags));
    exe
}

/// Every file and symbolic link below `dir`, relative to it.
fn files_below(dir: &Path) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() && !p.is_symlink() {
                todo.push(p);
            } else {
                found.insert(p.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    found
}

/// What install writes, relative to PREFIX.
fn expected_files() -> BTreeSet<String> {
    let mut files: BTreeSet<String> = [
        "lib/libquiche_ev.a".to_string(),
        format!("lib/libquiche_ev.so.{VERSION}"),
        format!("lib/{}", soname()),
        "lib/libquiche_ev.so".to_string(),
        "lib/pkgconfig/quiche_ev.pc".to_string(),
        "lib/pkgconfig/quiche_ev-static.pc".to_string(),
        "include/quiche_ev/quiche_ev.h".to_string(),
        "include/quiche_ev/quiche.h".to_string(),
        "include/quiche_ev/upstream/quiche.h".to_string(),
        "lib/cmake/quiche_ev/quiche_evConfig.cmake".to_string(),
        "lib/cmake/quiche_ev/quiche_evConfigVersion.cmake".to_string(),
    ].into();
    for name in examples() {
        files.insert(format!("bin/quiche-ev-{name}"));
    }
    files
}

/// The example programs the Makefile builds (its `EXAMPLES` list).
fn examples() -> Vec<String> {
    let makefile = std::fs::read_to_string(root().join("Makefile")).unwrap();
    let line = makefile.lines().find_map(|l| l.strip_prefix("EXAMPLES := ")).expect("EXAMPLES in the Makefile");
    let names: Vec<String> = line.split_whitespace().map(|p| p.trim_start_matches("c-examples/").to_string()).collect();
    assert!(names.len() >= 4, "{names:?}");
    names
}

fn dynamic_section(file: &Path) -> String {
    output(Command::new("readelf").arg("-d").arg(file))
}

fn has_debug_info(file: &Path) -> bool {
    output(Command::new("readelf").arg("-S").arg(file)).contains(".debug_info")
}

/// The functions a shared library exports.
fn exports(lib: &Path) -> BTreeSet<String> {
    output(Command::new("nm").args(["-D", "--defined-only"]).arg(lib))
        .lines().filter_map(|l| l.split_whitespace().nth(2)).map(String::from).collect()
}

/// The functions a header declares whose names start with `prefix`.
fn declared(header: &Path, prefix: &str) -> BTreeSet<String> {
    let text = std::fs::read_to_string(header).unwrap();
    let mut names = BTreeSet::new();
    for (at, _) in text.match_indices(prefix) {
        let name: String = text[at..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        if text[at + name.len()..].trim_start().starts_with('(') {
            names.insert(name);
        }
    }
    names
}

/// Runs an app against our server: its versions, the mapped library files,
/// and the body.
fn run_app(app: &Path, port: u16) -> (Vec<String>, Vec<String>, String) {
    let mut cmd = Command::new(app);
    cmd.env("QUICHE_EV_QUIET", "1").arg("127.0.0.1").arg(port.to_string());
    let run = run(cmd, DEADLINE);
    let stdout = String::from_utf8(run.stdout.clone()).unwrap();
    assert_eq!(run.code(), Some(0), "{} failed:\n{stdout}\n{}", app.display(), run.stderr);
    let mut lines = stdout.split_inclusive('\n');
    let versions = lines.next().unwrap().strip_prefix("versions: ").unwrap()
        .split_whitespace().map(String::from).collect();
    let (mut loaded, mut body) = (Vec::new(), String::new());
    for l in lines {
        match l.strip_prefix("loaded: ") {
            Some(path) if body.is_empty() => loaded.push(path.trim_end().to_string()),
            _ => body.push_str(l),
        }
    }
    (versions, loaded, body)
}

#[test]
fn installed_library_builds_programs_static_and_shared() {
    let dir = scratch("prefix");
    let prefix = dir.join("usr");
    make("install", &[("PREFIX", &prefix)], &[]);
    assert_eq!(files_below(&prefix), expected_files());

    // The shared library: the real file, its soname link, the -l link.
    let lib = prefix.join("lib");
    let real = lib.join(format!("libquiche_ev.so.{VERSION}"));
    assert_eq!(std::fs::read_link(lib.join(soname())).unwrap(), Path::new(&format!("libquiche_ev.so.{VERSION}")));
    assert_eq!(std::fs::read_link(lib.join("libquiche_ev.so")).unwrap(), Path::new(&soname()));
    let dynamic = dynamic_section(&real);
    assert!(dynamic.contains(&format!("Library soname: [{}]", soname())), "{dynamic}");
    assert!(dynamic.contains("Shared library: [libev.so.4]"), "libev must be linked dynamically:\n{dynamic}");

    // It exports our whole API, all of quiche's (as quiche's own cdylib
    // from the same build does), and nothing else.
    let exported = exports(&real);
    let ours = declared(&prefix.join("include/quiche_ev/quiche_ev.h"), "quiche_ev_");
    assert!(ours.len() >= 20 && ours.contains("quiche_ev_strerror"), "{ours:?}");
    let quiches: BTreeSet<String> = exports(&root().join("target/release/libquiche.so"))
        .into_iter().filter(|s| s.starts_with("quiche_")).collect();
    assert!(quiches.len() > 150 && quiches.contains("quiche_conn_send"), "{quiches:?}");
    let missing: Vec<&String> = ours.iter().chain(&quiches).filter(|s| !exported.contains(*s)).collect();
    assert!(missing.is_empty(), "not exported by {}: {missing:?}", real.display());
    let stray: Vec<&String> = exported.iter().filter(|s| !s.starts_with("quiche_")).collect();
    assert!(stray.is_empty(), "exported beyond the C API: {stray:?}");

    // Installed without debug info; the build tree keeps it (valgrind, asan).
    for f in [real.clone(), lib.join("libquiche_ev.a"), prefix.join("bin/quiche-ev-server")] {
        assert!(!has_debug_info(&f), "{} carries debug info", f.display());
    }
    assert!(has_debug_info(&root().join("target/release/libquiche_ev.so")));
    assert!(has_debug_info(&root().join("c-examples/server")));

    // A program built with pkg-config's flags only, three ways.
    let pcdir = lib.join("pkgconfig");
    assert_eq!(pkg_config(&pcdir, &["--modversion", "quiche_ev"]), [VERSION]);
    let src = dir.join("app.c");
    std::fs::write(&src, APP).unwrap();
    let libdir = pkg_config(&pcdir, &["--variable=libdir", "quiche_ev"]).concat();
    assert_eq!(Path::new(&libdir), lib);
    // Shared; the run-time path to a prefix outside ld.so's is the user's.
    let mut flags = pkg_config(&pcdir, &["--cflags", "--libs", "quiche_ev"]);
    flags.push(format!("-Wl,-rpath,{libdir}"));
    let shared = compile(&dir, "app-shared", &src, &flags);
    // Static, the one-line way (quiche_ev-static.pc).
    let static_pc = compile(&dir, "app-static", &src, &pkg_config(&pcdir, &["--cflags", "--libs", "quiche_ev-static"]));
    // Static, from quiche_ev.pc's Libs.private (pkg-config --static) and
    // the archive; --as-needed keeps the unused -lquiche_ev (the .so) out.
    let mut flags = pkg_config(&pcdir, &["--cflags", "quiche_ev"]);
    flags.push(format!("{libdir}/libquiche_ev.a"));
    flags.push("-Wl,--as-needed".into());
    flags.extend(pkg_config(&pcdir, &["--static", "--libs", "quiche_ev"]));
    let static_private = compile(&dir, "app-static-private", &src, &flags);

    let needs_so = format!("Shared library: [{}]", soname());
    assert!(dynamic_section(&shared).contains(&needs_so));
    let server = Server::ours("server", &[]);
    let want_versions = [VERSION, VERSION, "0.30.0", "0.30.0"];
    for app in [&shared, &static_pc, &static_private] {
        let (versions, loaded, body) = run_app(app, server.port);
        assert_eq!(versions, want_versions, "{}: versions", app.display());
        assert_eq!(body, "byez\n", "{}: body", app.display());
        if app == &shared {
            assert_eq!(loaded, [real.display().to_string()], "the shared app must map the installed library");
        } else {
            assert!(loaded.is_empty(), "{} maps {loaded:?}", app.display());
            assert!(!dynamic_section(app).contains(&needs_so), "{} needs the .so", app.display());
        }
    }

    // The installed headers in upstream's order (quiche.h first), strict C.
    let order = dir.join("order.c");
    std::fs::write(&order, "#include <quiche.h>\n#include <quiche_ev.h>\nint main(void) { return quiche_ev_version() == 0; }\n").unwrap();
    let mut flags = vec!["-std=c11".to_string(), "-pedantic".to_string(), "-fsyntax-only".to_string()];
    flags.extend(pkg_config(&pcdir, &["--cflags", "quiche_ev"]));
    output(Command::new("cc").args(["-Wall", "-Wextra", "-Werror"]).args(&flags).arg(&order));

    // Upstream's samples build against the installed shared library too.
    let samples = quiche_package().join("examples");
    for name in ["client", "server", "http3-client", "http3-server"] {
        let mut flags = vec!["-w".to_string()];
        flags.extend(pkg_config(&pcdir, &["--cflags", "--libs", "quiche_ev"]));
        let exe = compile(&dir, &format!("upstream-{name}"), &samples.join(format!("{name}.c")), &flags);
        assert!(dynamic_section(&exe).contains(&needs_so));
    }

    make("uninstall", &[("PREFIX", &prefix)], &[]);
    assert_eq!(files_below(&prefix), BTreeSet::new(), "uninstall left files behind");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn destdir_stages_under_prefix_and_uninstall_empties_it() {
    let dir = scratch("destdir");
    let stage = dir.join("stage");
    let prefix = Path::new("/usr");
    // KEEP_DEBUG: installed as built, for packagers' own debug splitting.
    make("install", &[("DESTDIR", &stage), ("PREFIX", prefix)], &["KEEP_DEBUG=1"]);
    let staged = stage.join("usr");
    assert_eq!(files_below(&stage), expected_files().iter().map(|f| format!("usr/{f}")).collect());
    assert!(has_debug_info(&staged.join(format!("lib/libquiche_ev.so.{VERSION}"))));

    // The .pc files name PREFIX, never the staging folder...
    let pcdir = staged.join("lib/pkgconfig");
    for pc in ["quiche_ev.pc", "quiche_ev-static.pc"] {
        let text = std::fs::read_to_string(pcdir.join(pc)).unwrap();
        assert!(text.contains("\nprefix=/usr\n") && !text.contains(stage.to_str().unwrap()), "{pc}:\n{text}");
    }
    assert_eq!(pkg_config(&pcdir, &["--cflags", "quiche_ev"]), ["-I/usr/include/quiche_ev"]);
    // ...and a packager testing the staged tree relocates them.
    let flags = pkg_config(&pcdir, &["--define-prefix", "--cflags", "--libs", "quiche_ev-static"]);
    assert_eq!(flags[..2], [format!("-I{}/include/quiche_ev", staged.display()),
                            format!("{}/lib/libquiche_ev.a", staged.display())]);

    // The CMake package finds the staged tree where it is, not under PREFIX.
    let cmake = dir.join("cmake-staged");
    std::fs::create_dir_all(&cmake).unwrap();
    std::fs::write(cmake.join("CMakeLists.txt"), format!("cmake_minimum_required(VERSION 3.13)
project(staged C)
find_package(quiche_ev {abi} REQUIRED)
get_target_property(shared quiche_ev::quiche_ev IMPORTED_LOCATION)
get_target_property(static quiche_ev::quiche_ev_static IMPORTED_LOCATION)
get_target_property(includes quiche_ev::quiche_ev INTERFACE_INCLUDE_DIRECTORIES)
message(STATUS \"found: ${{shared}} ${{static}} ${{includes}}\")
", abi = abi())).unwrap();
    let out = output(Command::new("cmake").arg("-S").arg(&cmake).arg("-B").arg(cmake.join("build"))
        .arg(format!("-DCMAKE_PREFIX_PATH={}", staged.display())));
    let found = out.lines().find_map(|l| l.strip_prefix("-- found: ")).unwrap_or_else(|| panic!("{out}"));
    assert_eq!(found, format!("{s}/lib/libquiche_ev.so.{VERSION} {s}/lib/libquiche_ev.a {s}/include/quiche_ev", s = staged.display()));

    make("uninstall", &[("DESTDIR", &stage), ("PREFIX", prefix)], &[]);
    assert_eq!(files_below(&stage), BTreeSet::new(), "uninstall left files behind");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The ABI version find_package asks for: MAJOR.MINOR (0.MINOR is its own
/// ABI while the major is 0).
fn abi() -> String {
    format!("{}.{}", env!("CARGO_PKG_VERSION_MAJOR"), env!("CARGO_PKG_VERSION_MINOR"))
}

/// A version of another ABI: the next minor while the major is 0, else the
/// next major.
fn other_abi() -> String {
    let major: u32 = env!("CARGO_PKG_VERSION_MAJOR").parse().unwrap();
    let minor: u32 = env!("CARGO_PKG_VERSION_MINOR").parse().unwrap();
    if major == 0 { format!("0.{}", minor + 1) } else { format!("{}.0", major + 1) }
}

/// A CMake project with nothing but find_package(quiche_ev) and the
/// imported targets: APP linked shared and static, the version file's
/// answers checked at configure time.
fn cmake_project(abi: &str, other: &str) -> String {
    format!("cmake_minimum_required(VERSION 3.13)
project(quiche_ev_app C)

find_package(quiche_ev {abi} REQUIRED)

add_executable(app-shared app.c)
target_compile_options(app-shared PRIVATE -Wall -Wextra -Werror)
target_link_libraries(app-shared PRIVATE quiche_ev::quiche_ev)

add_executable(app-static app.c)
target_compile_options(app-static PRIVATE -Wall -Wextra -Werror)
target_link_libraries(app-static PRIVATE quiche_ev::quiche_ev_static)

# The version file: this version exactly, a range from this ABI, not
# another ABI.
find_package(quiche_ev {version} EXACT QUIET)
if(NOT quiche_ev_FOUND)
  message(FATAL_ERROR \"find_package(quiche_ev {version} EXACT) failed\")
endif()
find_package(quiche_ev {abi}...<{other} QUIET)
if(NOT quiche_ev_FOUND)
  message(FATAL_ERROR \"find_package(quiche_ev {abi}...<{other}) failed\")
endif()
find_package(quiche_ev {other} QUIET)
if(quiche_ev_FOUND)
  message(FATAL_ERROR \"find_package(quiche_ev {other}) accepted {version}: another ABI\")
endif()
", version = VERSION)
}

#[test]
fn cmake_package_builds_programs_static_and_shared() {
    let dir = scratch("cmake");
    let prefix = dir.join("usr");
    make("install", &[("PREFIX", &prefix)], &[]);
    let project = dir.join("project");
    std::fs::create_dir_all(&project).unwrap();
    std::fs::write(project.join("CMakeLists.txt"), cmake_project(&abi(), &other_abi())).unwrap();
    std::fs::write(project.join("app.c"), APP).unwrap();
    let build = dir.join("build");
    output(Command::new("cmake").arg("-S").arg(&project).arg("-B").arg(&build)
        .arg(format!("-DCMAKE_PREFIX_PATH={}", prefix.display())));
    output(Command::new("cmake").arg("--build").arg(&build));

    let real = prefix.join(format!("lib/libquiche_ev.so.{VERSION}"));
    let (shared, static_) = (build.join("app-shared"), build.join("app-static"));
    let needs_so = format!("Shared library: [{}]", soname());
    assert!(dynamic_section(&shared).contains(&needs_so));
    assert!(dynamic_section(&shared).contains("Shared library: [libev.so.4]"));
    assert!(!dynamic_section(&static_).contains(&needs_so), "the static app needs the .so");
    let server = Server::ours("server", &[]);
    for app in [&shared, &static_] {
        let (versions, loaded, body) = run_app(app, server.port);
        assert_eq!(versions, [VERSION, VERSION, "0.30.0", "0.30.0"], "{}: versions", app.display());
        assert_eq!(body, "byez\n", "{}: body", app.display());
        let want: Vec<String> = if app == &shared { vec![real.display().to_string()] } else { vec![] };
        assert_eq!(loaded, want, "{}: mapped libquiche_ev files", app.display());
    }

    make("uninstall", &[("PREFIX", &prefix)], &[]);
    assert_eq!(files_below(&prefix), BTreeSet::new(), "uninstall left files behind");
    std::fs::remove_dir_all(&dir).unwrap();
}
