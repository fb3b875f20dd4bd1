//! The server's configuration calls as a host makes them, on the
//! in-memory platform: connection-ID layouts (QUIC-LB) and the token and
//! reset keys, what they accept, what they refuse (with the reason as the
//! last error), and an exchange carried end to end under a layout.

use std::ffi::CStr;

use libc::c_int;

use super::{no_violations, size, LIMIT};
use crate::ffi::errors::quiche_ev_last_error;
use crate::ffi::server::*;
use crate::ffi::types::*;
use crate::testing::script::*;
use crate::testing::world::*;
use crate::testing::Ran;

/// A server's connection IDs as configuration: QUIC-LB layouts of 20
/// (keyed) and 8 (plaintext) octets, set through the exported call, carry
/// a whole exchange end to end (short headers are routed by CIDs of the
/// layout's length, not 16), every CID the server issued decodes to its
/// server ID, the description names the layout, and layouts the draft does
/// not allow are refused with the reason as the last error.
#[test]
fn a_quic_lb_layout_of_any_length_serves_end_to_end_and_its_cids_decode_to_the_server_id() {
    use crate::quic_lb::Layout;
    for (sid, nonce, key) in [(&[0x0a, 0x0b, 0x0c][..], 16, Some([3u8; 16])), (&[0x42][..], 6, None)] {
        let mut w = World::new(true);
        let s = w.server(Watch::Own);
        let (kp, kl) = key.as_ref().map_or((std::ptr::null(), 0), |k| (k.as_ptr(), 16));
        assert_eq!(quiche_ev_server_set_cid_layout(s, 3, sid.as_ptr(), sid.len(), nonce, kp, kl, 7), 0);
        let mut line = [0 as libc::c_char; 256];
        let n = quiche_ev_server_cid_layout(s, line.as_mut_ptr(), line.len());
        let text = unsafe { CStr::from_ptr(line.as_ptr()) }.to_string_lossy().into_owned();
        assert_eq!(n as usize, text.len());
        assert!(text.starts_with(&format!("QUIC-LB connection IDs of {} octets: config ID 3", 1 + sid.len() + nonce)),
                "{text}");
        let c = w.client(Watch::Own);
        hook_server(s);
        hook_client(c);
        set_script(Defaults);
        get(c, &format!("/p/{}/9", size(20_000)));
        w.lp.run_until(LIMIT, || count("done") > 0);
        assert_eq!(count("done 0 0"), 1, "the response came through: {:?}", calls());
        let srv = quiche_ev_server::get(s).unwrap();
        // SAFETY: a live server, outside its callbacks.
        let cids: Vec<_> = unsafe {
            let st = crate::server::ServerCore::state(srv);
            st.conn_ids().into_iter().flat_map(|id| crate::server::ServerCore::cids_of(srv, id)).collect()
        };
        assert!(cids.len() >= 2, "the first CID and a spare one: {cids:?}");
        let layout = Layout::new(3, sid.len(), nonce, key).unwrap();
        for cid in &cids {
            assert_eq!(cid.len(), 1 + sid.len() + nonce);
            assert_eq!(&*layout.decode(cid).unwrap().server_id, sid, "{cid:?}");
            assert_eq!(crate::steer::worker_of(cid), Some(7));
        }
        assert_eq!(quiche_ev_server_shutdown(s, 0), 0);
        assert_eq!(w.lp.run(LIMIT), Ran::Idle);
        no_violations();
        free_client(c);
        free_server(s);
    }
    let mut w = World::new(true);
    let s = w.server(Watch::Own);
    let refused = |config_id: c_int, sid: &[u8], nonce: usize, klen: usize, worker: c_int, why: &str| {
        let key = [0u8; 16];
        let kp = if klen == 0 { std::ptr::null() } else { key.as_ptr() };
        assert_eq!(quiche_ev_server_set_cid_layout(s, config_id, sid.as_ptr(), sid.len(), nonce, kp, klen, worker),
                   crate::ffi::QUICHE_EV_ERR_INVALID);
        let last = unsafe { CStr::from_ptr(quiche_ev_last_error()) }.to_string_lossy().into_owned();
        assert!(last.contains(why), "{last:?} should say {why:?}");
    };
    refused(7, &[1], 8, 0, -1, "config ID 7");
    refused(0, &[1; 16], 4, 0, -1, "server ID of 16 octets");
    refused(0, &[1], 3, 0, -1, "nonce of 3 octets");
    refused(0, &[1; 10], 10, 0, -1, "more than 19");
    refused(0, &[1], 8, 15, -1, "16 bytes");
    refused(0, &[1], 8, 0, 32, "worker");
    assert_eq!(quiche_ev_server_set_cid_layout(std::ptr::null_mut(), 0, [1u8].as_ptr(), 1, 8, std::ptr::null(), 0, -1),
               crate::ffi::QUICHE_EV_ERR_NULL);
    assert_eq!(quiche_ev_server_set_cid_layout(s, 0, std::ptr::null(), 1, 8, std::ptr::null(), 0, -1),
               crate::ffi::QUICHE_EV_ERR_NULL);
    let mut line = [0 as libc::c_char; 8];
    let n = quiche_ev_server_cid_layout(s, line.as_mut_ptr(), line.len());
    assert_eq!(n as usize, "random 16-octet connection IDs".len(), "the default, untouched by the refusals");
    assert_eq!(unsafe { CStr::from_ptr(line.as_ptr()) }.to_bytes(), b"random ", "truncated, NUL-terminated");
    free_server(s);
}

/// Token and reset keys as the C API takes them: 32 bytes each, the
/// previous one optional; anything else refused with the reason.
#[test]
fn token_and_reset_keys_are_checked_and_a_rotation_keeps_both() {
    let mut w = World::new(true);
    let s = w.server(Watch::Own);
    let (a, b) = ([1u8; 32], [2u8; 32]);
    assert_eq!(quiche_ev_server_set_token_keys(s, a.as_ptr(), b.as_ptr(), 32), 0);
    assert_eq!(quiche_ev_server_set_reset_keys(s, b.as_ptr(), std::ptr::null(), 32), 0);
    let srv = quiche_ev_server::get(s).unwrap();
    // SAFETY: a live server, outside its callbacks.
    let keys = unsafe { crate::server::ServerCore::state(srv).secrets().get() };
    assert!(keys.token == crate::secrets::KeyPair { current: a, previous: Some(b) });
    assert!(keys.reset == crate::secrets::KeyPair { current: b, previous: None });
    assert_eq!(quiche_ev_server_set_token_keys(s, a.as_ptr(), std::ptr::null(), 16), crate::ffi::QUICHE_EV_ERR_INVALID);
    let last = unsafe { CStr::from_ptr(quiche_ev_last_error()) }.to_string_lossy().into_owned();
    assert!(last.contains("32 bytes, not 16"), "{last}");
    assert_eq!(quiche_ev_server_set_reset_keys(s, std::ptr::null(), a.as_ptr(), 32), crate::ffi::QUICHE_EV_ERR_NULL);
    assert_eq!(quiche_ev_server_set_reset_key(s, a.as_ptr(), 32), 0);
    // SAFETY: as above.
    let keys = unsafe { crate::server::ServerCore::state(srv).secrets().get() };
    assert!(keys.reset == crate::secrets::KeyPair { current: a, previous: None }, "the old call: no previous key");
    free_server(s);
}
