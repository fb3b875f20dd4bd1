//! A `quiche_config *` made with quiche's C API is the `quiche::Config` the
//! Rust core borrows (src/ffi/types.rs). This holds for the pinned quiche
//! version only; this test proves it for that version.

use std::net::SocketAddr;

// The point of this test: these C functions take and return quiche's own
// Rust type (boxed by its ffi), whatever its layout.
#[allow(improper_ctypes)]
extern "C" {
    fn quiche_config_new(version: u32) -> *mut quiche::Config;
    fn quiche_config_set_application_protos(c: *mut quiche::Config, p: *const u8, len: usize) -> i32;
    fn quiche_config_set_max_idle_timeout(c: *mut quiche::Config, v: u64);
    fn quiche_config_set_initial_max_data(c: *mut quiche::Config, v: u64);
    fn quiche_config_set_initial_max_stream_data_bidi_local(c: *mut quiche::Config, v: u64);
    fn quiche_config_set_initial_max_stream_data_bidi_remote(c: *mut quiche::Config, v: u64);
    fn quiche_config_set_initial_max_streams_bidi(c: *mut quiche::Config, v: u64);
    fn quiche_config_load_cert_chain_from_pem_file(c: *mut quiche::Config, p: *const libc::c_char) -> i32;
    fn quiche_config_load_priv_key_from_pem_file(c: *mut quiche::Config, p: *const libc::c_char) -> i32;
    fn quiche_config_free(c: *mut quiche::Config);
}

// Keep the library (and so quiche's exported C API) linked in.
use quiche_ev as _;

#[test]
fn c_made_config_drives_a_rust_handshake() {
    let crt = std::ffi::CString::new(concat!(env!("CARGO_MANIFEST_DIR"), "/c-examples/cert.crt")).unwrap();
    let key = std::ffi::CString::new(concat!(env!("CARGO_MANIFEST_DIR"), "/c-examples/cert.key")).unwrap();
    let alpn = b"\x0ahq-interop\x05other";
    unsafe {
        let mk = |server: bool| {
            let c = quiche_config_new(quiche::PROTOCOL_VERSION);
            assert!(!c.is_null());
            assert_eq!(quiche_config_set_application_protos(c, alpn.as_ptr(), alpn.len()), 0);
            quiche_config_set_max_idle_timeout(c, 5000);
            quiche_config_set_initial_max_data(c, 1_000_000);
            quiche_config_set_initial_max_stream_data_bidi_local(c, 100_000);
            quiche_config_set_initial_max_stream_data_bidi_remote(c, 100_000);
            quiche_config_set_initial_max_streams_bidi(c, 10);
            if server {
                assert_eq!(quiche_config_load_cert_chain_from_pem_file(c, crt.as_ptr()), 0, "run `make` first");
                assert_eq!(quiche_config_load_priv_key_from_pem_file(c, key.as_ptr()), 0);
            }
            c
        };
        let (sc, cc) = (mk(true), mk(false));
        let s_addr: SocketAddr = "127.0.0.1:4433".parse().unwrap();
        let c_addr: SocketAddr = "127.0.0.1:5555".parse().unwrap();
        let scid = quiche::ConnectionId::from_ref(&[1; 16]);
        let ccid = quiche::ConnectionId::from_ref(&[2; 16]);
        // Borrow the C objects exactly as the core does.
        let mut client = quiche::connect(None, &ccid, c_addr, s_addr, &mut *cc).unwrap();
        let mut server = quiche::accept(&scid, None, s_addr, c_addr, &mut *sc).unwrap();
        let mut buf = [0u8; 65535];
        for _ in 0..20 {
            let mut moved = false;
            while let Ok((n, _)) = client.send(&mut buf) {
                server.recv(&mut buf[..n], quiche::RecvInfo { from: c_addr, to: s_addr }).unwrap();
                moved = true;
            }
            while let Ok((n, _)) = server.send(&mut buf) {
                client.recv(&mut buf[..n], quiche::RecvInfo { from: s_addr, to: c_addr }).unwrap();
                moved = true;
            }
            if !moved {
                break;
            }
        }
        assert!(client.is_established() && server.is_established());
        // The ALPN and the idle timeout set through the C API took effect.
        assert_eq!(client.application_proto(), b"hq-interop");
        assert_eq!(server.peer_transport_params().unwrap().max_idle_timeout, 5000);
        drop((client, server));
        quiche_config_free(sc);
        quiche_config_free(cc);
    }
}
