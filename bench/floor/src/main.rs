//! `floor`: what quiche 0.30 itself costs, with no sockets, no event loop
//! and no framework around it — the floor any program built on quiche
//! stands on, measured in the same `make bench` run as ours.
//!
//! A quiche client and a quiche server run in this one thread with
//! `quiche::h3` on top, configured as ours' HTTP/3 examples are (see
//! link.rs for the list); their datagrams are buffers handed over in
//! memory. Each side's calls run inside its own CPU meter (thread CPU
//! time), so the server's share and the client's are apart. Scenarios:
//!
//!   handshake        N connections one after another: handshake, HTTP/3
//!                    set-up, `GET /` answered `byez\n`, close (as ours'
//!                    handshake rows); the server's and the client's CPU per
//!                    connection; `handshake_retry` the same with a Retry
//!                    round trip first
//!   bulk             one response body of M MiB; CPU per GiB on the
//!                    sending (server) and receiving (client) side
//!   requests         C connections, S requests in flight on each, 1 KiB
//!                    responses; CPU per request (after a warm-up)
//!   aes128gcm        AES-128-GCM alone over 1350-byte packets (aes.rs)
//!
//! With `--socket-trip N`, the datagrams to the server in the handshake and
//! request scenarios also go through a loopback socket, N at a time,
//! between its calls and outside its meter (trip.rs).
//!
//! Prints one JSON object on stdout. Usage: see `usage()`.

mod aes;
mod app;
mod cpu;
mod link;
mod pair;
mod trip;

use std::time::Instant;

use quiche::h3;

use app::{Fetcher, Responder};
use pair::Pair;
use trip::SocketTrip;

struct Args {
    cert: String,
    key: String,
    handshakes: usize,
    bulk_mib: usize,
    requests: usize,
    conns: usize,
    streams: usize,
    body: usize,
    warmup: usize,
    batch: usize,
    aes_mib: usize,
    socket_trip: usize,
    only: Vec<String>,
}

fn usage() -> ! {
    eprintln!("usage: floor [--cert FILE] [--key FILE] [--handshakes N] [--bulk-mib M] [--requests R]\n\
               \x20            [--conns C] [--streams S] [--body BYTES] [--warmup W] [--batch B] [--aes-mib M]\n\
               \x20            [--socket-trip N] [--only handshake,handshake_retry,bulk,requests,aes128gcm]\n\
               defaults: ./cert.crt ./cert.key, 1000 handshakes, 256 MiB, 100000 requests over 10\n\
               connections with 100 in flight each, 1024-byte bodies, 20 warm-up requests per\n\
               connection, receive batches of 32 datagrams, 256 MiB of AES");
    std::process::exit(2);
}

fn parse() -> Args {
    let mut a = Args { cert: "./cert.crt".into(), key: "./cert.key".into(), handshakes: 1000, bulk_mib: 256,
                       requests: 100_000, conns: 10, streams: 100, body: 1024, warmup: 20, batch: 32,
                       aes_mib: 256, socket_trip: 0, only: Vec::new() };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < argv.len() {
        let val = argv.get(i + 1).cloned().unwrap_or_else(|| usage());
        let num = || val.parse::<usize>().unwrap_or_else(|_| usage());
        match argv[i].as_str() {
            "--cert" => a.cert = val.clone(),
            "--key" => a.key = val.clone(),
            "--handshakes" => a.handshakes = num(),
            "--bulk-mib" => a.bulk_mib = num(),
            "--requests" => a.requests = num(),
            "--conns" => a.conns = num().max(1),
            "--streams" => a.streams = num().max(1),
            "--body" => a.body = num(),
            "--warmup" => a.warmup = num(),
            "--batch" => a.batch = num().max(1),
            "--aes-mib" => a.aes_mib = num().max(1),
            "--socket-trip" => a.socket_trip = num(),
            "--only" => a.only = val.split(',').filter(|s| !s.is_empty()).map(String::from).collect(),
            _ => usage(),
        }
        i += 2;
    }
    a
}

/// The configurations, made once (as ours' mains do).
struct Configs {
    server: quiche::Config,
    client: quiche::Config,
    h3: h3::Config,
}

fn f(v: f64) -> String {
    if v.is_finite() { format!("{v:.6}") } else { "null".into() }
}

/// A pair's socket trip when `--socket-trip N` asked for one (trip.rs).
fn socket_trip(a: &Args, scenario: &str) -> Result<Option<SocketTrip>, String> {
    if a.socket_trip == 0 {
        return Ok(None);
    }
    SocketTrip::new(a.socket_trip).map(Some).map_err(|e| format!("{scenario}: --socket-trip: {e}"))
}

/// N connections one after another; `{"conns", "server_us", "client_us", ...}`.
fn handshake(cfg: &mut Configs, a: &Args, retry: bool) -> Result<String, String> {
    let (mut server_ns, mut client_ns) = (0u64, 0u64);
    let (mut spare, mut server_pkts, mut client_pkts, mut waits) = ((0, 0), 0, 0, 0);
    let t0 = Instant::now();
    // One warm-up connection (allocator, first-use costs), not counted.
    for i in 0..=a.handshakes {
        let mut p = Pair::connect(i, retry, &mut cfg.client, Responder::new(5), Fetcher::new("/", 1, 1), true);
        p.trip = socket_trip(a, "handshake")?;
        p.run_until(&mut cfg.server, &cfg.h3, a.batch, |p| p.server_gone && p.client_gone)?;
        if p.fetch.done != 1 || p.fetch.failed != 0 || p.fetch.body_bytes != 5 || p.recv_errors != 0 {
            return Err(format!("handshake {i}: {} done, {} failed, {} body bytes, {} datagrams refused",
                               p.fetch.done, p.fetch.failed, p.fetch.body_bytes, p.recv_errors));
        }
        if i == 0 {
            continue;
        }
        server_ns += p.server_cpu.ns;
        client_ns += p.client_cpu.ns;
        spare = p.spare_scids;
        server_pkts += p.server_stats.map_or(0, |s| s.sent);
        client_pkts += p.client_stats.map_or(0, |s| s.sent);
        waits += p.timer_waits;
    }
    let n = a.handshakes.max(1) as f64;
    Ok(format!("{{\"conns\": {}, \"retry\": {retry}, \"server_us\": {}, \"client_us\": {}, \
                \"server_packets_per_conn\": {}, \"client_packets_per_conn\": {}, \
                \"spare_scids_server\": {}, \"spare_scids_client\": {}, \"timer_waits\": {waits}, \"wall_s\": {}}}",
               a.handshakes, f(server_ns as f64 / n / 1e3), f(client_ns as f64 / n / 1e3),
               f(server_pkts as f64 / n), f(client_pkts as f64 / n), spare.0, spare.1,
               f(t0.elapsed().as_secs_f64())))
}

/// One body of `bulk_mib` MiB from server to client.
fn bulk(cfg: &mut Configs, a: &Args) -> Result<String, String> {
    let size = a.bulk_mib << 20;
    let t0 = Instant::now();
    let mut p = Pair::connect(0, false, &mut cfg.client, Responder::new(size), Fetcher::new("/bulk", 1, 1), true);
    p.run_until(&mut cfg.server, &cfg.h3, a.batch, |p| p.server_gone && p.client_gone)?;
    let wall = t0.elapsed().as_secs_f64();
    if p.fetch.done != 1 || p.fetch.body_bytes != size as u64 || p.recv_errors != 0 {
        return Err(format!("bulk: {} of {size} body bytes, {} done, {} datagrams refused", p.fetch.body_bytes,
                           p.fetch.done, p.recv_errors));
    }
    let gib = size as f64 / (1u64 << 30) as f64;
    let (ss, cs) = (p.server_stats.unwrap(), p.client_stats.unwrap());
    Ok(format!("{{\"bytes\": {size}, \"server_s_per_gib\": {}, \"client_s_per_gib\": {}, \
                \"server_packets\": {}, \"client_packets\": {}, \"lost\": {}, \"gbit_s_in_memory\": {}, \
                \"wall_s\": {}}}",
               f(p.server_cpu.ns as f64 / 1e9 / gib), f(p.client_cpu.ns as f64 / 1e9 / gib), ss.sent, cs.sent,
               ss.lost, f(size as f64 * 8.0 / wall / 1e9), f(wall)))
}

/// `conns` connections with `streams` requests in flight each: a warm-up
/// of `warmup` requests per connection, then `requests` in all, measured.
fn requests(cfg: &mut Configs, a: &Args) -> Result<String, String> {
    let t0 = Instant::now();
    let mut pairs: Vec<Pair> = (0..a.conns)
        .map(|i| Pair::connect(i, false, &mut cfg.client, Responder::new(a.body),
                               Fetcher::new("/1k.bin", a.warmup, a.streams), false))
        .collect();
    for p in pairs.iter_mut() {
        p.trip = socket_trip(a, "requests")?;
    }
    let round = |pairs: &mut Vec<Pair>, cfg: &mut Configs| -> Result<(), String> {
        let mut idle = 0;
        while pairs.iter().any(|p| !p.fetch.finished()) {
            let mut moved = 0;
            for p in pairs.iter_mut() {
                moved += p.server_turn(&mut cfg.server, &cfg.h3);
                moved += p.client_turn(&cfg.h3, a.batch);
            }
            if moved == 0 {
                idle += 1;
                if idle > 100 || !pairs.iter_mut().any(|p| p.wait()) {
                    return Err("requests: stalled".into());
                }
            } else {
                idle = 0;
            }
        }
        Ok(())
    };
    round(&mut pairs, cfg)?;
    let before: Vec<(u64, u64, usize)> = pairs.iter().map(|p| (p.server_cpu.ns, p.client_cpu.ns, p.fetch.done)).collect();
    let pkts0 = server_packets(&pairs);
    let rss0 = rss_kib();
    let per_conn = a.requests.div_ceil(a.conns);
    for p in pairs.iter_mut() {
        p.fetch.to_issue = per_conn;
    }
    let t1 = Instant::now();
    round(&mut pairs, cfg)?;
    let wall = t1.elapsed().as_secs_f64();
    let pkts1 = server_packets(&pairs);
    let rss1 = rss_kib();
    let (mut server_ns, mut client_ns, mut done, mut failed, mut errors) = (0, 0, 0, 0, 0);
    for (p, b) in pairs.iter().zip(&before) {
        server_ns += p.server_cpu.ns - b.0;
        client_ns += p.client_cpu.ns - b.1;
        done += p.fetch.done - b.2;
        failed += p.fetch.failed;
        errors += p.resp.errors;
    }
    if done != per_conn * a.conns || failed != 0 || errors != 0 {
        return Err(format!("requests: {done} done, {failed} failed, {errors} server errors"));
    }
    let n = done as f64;
    Ok(format!("{{\"conns\": {}, \"streams\": {}, \"body\": {}, \"socket_trip\": {}, \"requests\": {done}, \
                \"server_us\": {}, \"client_us\": {}, \"requests_per_s_in_memory\": {}, \"rss_start_kib\": {rss0}, \
                \"rss_end_kib\": {rss1}, \"server_packets_sent\": {}, \"server_packets_recv\": {}, \
                \"wall_s\": {}}}",
               a.conns, a.streams, a.body, a.socket_trip, f(server_ns as f64 / n / 1e3), f(client_ns as f64 / n / 1e3),
               f(n / wall), pkts1.0 - pkts0.0, pkts1.1 - pkts0.1, f(t0.elapsed().as_secs_f64())))
}

/// The packets the server connections sent and received so far (quiche's
/// statistics), for the packets-per-request figures.
fn server_packets(pairs: &[Pair]) -> (usize, usize) {
    pairs.iter().filter_map(|p| p.server.as_ref()).map(|s| s.conn.stats())
        .fold((0, 0), |(sent, recv), st| (sent + st.sent, recv + st.recv))
}

/// This process's resident memory (VmRSS), in KiB: both sides' together.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()))
        .unwrap_or(0)
}

fn main() {
    let a = parse();
    let want = |s: &str| a.only.is_empty() || a.only.iter().any(|o| o == s);
    let server = link::server_config(&a.cert, &a.key).unwrap_or_else(|e| {
        eprintln!("floor: {e}");
        std::process::exit(1);
    });
    let mut cfg = Configs { server, client: link::client_config(), h3: h3::Config::new().unwrap() };
    let mut parts = vec![format!("\"quiche\": \"0.30.0\", \"max_datagram_size\": {}, \"batch\": {}",
                                 link::MAX_DATAGRAM_SIZE, a.batch)];
    let mut failed = false;
    let mut add = |name: &str, r: Result<String, String>| match r {
        Ok(v) => parts.push(format!("\"{name}\": {v}")),
        Err(e) => {
            failed = true;
            parts.push(format!("\"{name}\": {{\"error\": {:?}}}", e));
        }
    };
    if want("handshake") {
        add("handshake", handshake(&mut cfg, &a, false));
    }
    if want("handshake_retry") {
        add("handshake_retry", handshake(&mut cfg, &a, true));
    }
    if want("bulk") {
        add("bulk", bulk(&mut cfg, &a));
    }
    if want("requests") {
        add("requests", requests(&mut cfg, &a));
    }
    if want("aes128gcm") {
        let c = aes::measure(a.aes_mib);
        add("aes128gcm", Ok(format!("{{\"packet\": {}, \"payload\": {}, \"packets\": {}, \"seal_s_per_gib\": {}, \
                                      \"open_s_per_gib\": {}}}",
                                     link::MAX_DATAGRAM_SIZE, aes::PAYLOAD, c.packets, f(c.seal_s_per_gib),
                                     f(c.open_s_per_gib))));
    }
    println!("{{{}}}", parts.join(", "));
    std::process::exit(if failed { 1 } else { 0 });
}
