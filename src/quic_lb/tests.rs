//! Tests: every vector of the draft's Appendix B, its worked four-pass
//! example, and the properties around them.

use super::cipher::{expand, merge, split, Aes};
use super::generator::NonceCounter;
use super::*;

fn hex(s: &str) -> Vec<u8> {
    assert!(s.len() % 2 == 0, "odd hex string {s}");
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

fn key(s: &str) -> [u8; KEY_LEN] {
    hex(s).try_into().unwrap()
}

/// Appendix B's key for every encrypted vector.
const KEY_B: &str = "8f95f09245765f80256934e50c66207f";

/// One vector: the layout, server ID and nonce encode (with the length
/// self-described, as in every Appendix B vector) to exactly `cid`, and
/// `cid` decodes back to both.
fn check_vector(config_id: u8, sid: &str, nonce: &str, key: Option<&str>, cid: &str) {
    let (sid, nonce, cid) = (hex(sid), hex(nonce), hex(cid));
    let layout = Layout::new(config_id, sid.len(), nonce.len(), key.map(self::key)).unwrap();
    let encoded = layout.encode(&sid, &nonce, FirstOctet::Length).unwrap();
    assert_eq!(&encoded[..], &cid[..], "encode");
    let decoded = layout.decode(&cid).unwrap();
    assert_eq!(decoded.config_id, config_id);
    assert_eq!(&decoded.server_id[..], &sid[..], "decoded server ID");
    assert_eq!(&decoded.nonce[..], &nonce[..], "decoded nonce");
    // The server's view agrees.
    let config = Config::new(config_id, &sid, nonce.len(), key.map(self::key)).unwrap();
    assert_eq!(&config.encode(&nonce, FirstOctet::Length).unwrap()[..], &cid[..]);
    assert!(config.is_own(&cid));
}

// -- Appendix B.1, unencrypted CIDs --------------------------------------

#[test]
fn appendix_b1_unencrypted_vector_1() {
    check_vector(0, "c4605e", "4504cc4f", None, "07c4605e4504cc4f");
}

/// The draft prints this row as `1 350d28b420 3487d970b
/// 20a350d28b4203487d970b`: a nonce of nine hex digits and a first octet
/// of three. Every field was evidently printed as an unpadded hex
/// integer (the first octet as `hex(cr << 5)` then `hex(length)`, which
/// also reproduces row 1's `0` `7`): the nonce is the integer
/// 0x3487d970b in five octets, 03487d970b, and the first octet is
/// 0x20 | 0x0a = 0x2a for an 11-octet CID. That reading keeps the
/// server ID's inner `0d` and the row's 22 digits consistent; reading
/// the digits as unpadded bytes instead would have printed the server
/// ID as 35d28b420.
#[test]
fn appendix_b1_unencrypted_vector_2() {
    check_vector(1, "350d28b420", "03487d970b", None, "2a350d28b42003487d970b");
}

// -- Appendix B.2, encrypted CIDs ----------------------------------------

/// Server ID + nonce = 7 octets (odd): four passes, nibble split.
#[test]
fn appendix_b2_encrypted_vector_1() {
    check_vector(0, "ed793a", "ee080dbf", Some(KEY_B), "0720b1d07b359d3c");
}

/// 10 + 5 = 15 octets (odd), server ID longer than the nonce: decoding
/// needs the fourth pass.
#[test]
fn appendix_b2_encrypted_vector_2() {
    check_vector(1, "ed793a51d49b8f5fab65", "ee080dbf48", Some(KEY_B), "2fcc381bc74cb4fbad2823a3d1f8fed2");
}

/// 8 + 8 = 16 octets: the single-pass AES-ECB special case.
#[test]
fn appendix_b2_encrypted_vector_3() {
    let layout = Layout::new(2, 8, 8, Some(key(KEY_B))).unwrap();
    assert_eq!(layout.mode(), Mode::SinglePass);
    check_vector(2, "ed793a51d49b8f5f", "ee080dbf48c0d1e5", Some(KEY_B), "504dd2d05a7b0de9b2b9907afb5ecf8cc3");
}

/// 9 + 9 = 18 octets (even), four passes. The draft's table labels this
/// row cr_bits 3, but its CID's first octet 0x12 is config ID 0 with
/// length 18; the first octet is not an input to the encryption, so the
/// ciphertext is the same under either config ID. Checked both ways.
#[test]
fn appendix_b2_encrypted_vector_4() {
    let (sid, nonce) = ("ed793a51d49b8f5fab", "ee080dbf48c0d1e55d");
    let body = "5779c9cc86beb3a3a4a3ca96fce4bfe0cdbc";
    check_vector(0, sid, nonce, Some(KEY_B), &format!("12{body}"));
    check_vector(3, sid, nonce, Some(KEY_B), &format!("72{body}"));
}

// -- §5.4.2's worked example and helper functions -------------------------

#[test]
fn expand_and_truncate_examples() {
    assert_eq!(expand(0x06, 0x02, &hex("aaba3c")).to_vec(), hex("aaba3c00000000000000000000000602"));
    // The example's step 3 input.
    assert_eq!(expand(7, 1, &hex("31441a90")).to_vec(), hex("31441a90000000000000000000000701"));
}

#[test]
fn split_shares_the_middle_octet_by_nibbles() {
    // The draft's own example: 0x7040b81b55ccf3 -> 0x7040b810, 0x0b55ccf3.
    let (l, r) = split(&hex("7040b81b55ccf3"));
    assert_eq!(l[..4].to_vec(), hex("7040b810"));
    assert_eq!(r[..4].to_vec(), hex("0b55ccf3"));
    assert_eq!(&merge(&l, &r, 7)[..], &hex("7040b81b55ccf3")[..]);
    let (l, r) = split(&hex("0102030405060708"));
    assert_eq!((l[..4].to_vec(), r[..4].to_vec()), (hex("01020304"), hex("05060708")));
}

/// §5.4.2's "Encryption Example", step by step: the AES outputs of
/// passes 1-4 and the final CID 0x0767947d29be054a.
#[test]
fn four_pass_encryption_example() {
    let k = key("fdf726a9893ec05c0632d3956680baf0");
    let mut aes = Aes::new(&k, true);
    assert_eq!(aes.block(&expand(7, 1, &hex("31441a90"))).to_vec(), hex("a255dd8cdacf01948d3a848c3c7fee23"));
    assert_eq!(aes.block(&expand(7, 2, &hex("0e3c1ff9"))).to_vec(), hex("e5e452cb9e1bedb0b2bf830506bf4c4e"));
    assert_eq!(aes.block(&expand(7, 3, &hex("d4a04850"))).to_vec(), hex("b7821ab3024fed0913b6a04d18e3216f"));
    assert_eq!(aes.block(&expand(7, 4, &hex("09be054a"))).to_vec(), hex("b334357cfdf81e3fafe180154eaf7378"));
    check_vector(0, "31441a", "9c69c275", Some("fdf726a9893ec05c0632d3956680baf0"), "0767947d29be054a");
}

// -- Beyond the vectors ---------------------------------------------------

/// Every legal (server ID, nonce) length pair, keyed and not: encode
/// then decode is the identity, and the CID has the layout's length.
#[test]
fn every_length_round_trips() {
    let k = key(KEY_B);
    for sid_len in MIN_SERVER_ID_LEN..=MAX_SERVER_ID_LEN {
        for nonce_len in MIN_NONCE_LEN..=MAX_PLAINTEXT_LEN - sid_len {
            for key in [None, Some(k)] {
                let mut sid = vec![0u8; sid_len];
                let mut nonce = vec![0u8; nonce_len];
                for _ in 0..20 {
                    random_bytes(&mut sid);
                    random_bytes(&mut nonce);
                    let layout = Layout::new(5, sid_len, nonce_len, key).unwrap();
                    let cid = layout.encode(&sid, &nonce, FirstOctet::Random).unwrap();
                    assert_eq!(cid.len(), 1 + sid_len + nonce_len);
                    assert_eq!(config_id_of(&cid), Some(5));
                    let d = layout.decode(&cid).unwrap();
                    assert_eq!((&d.server_id[..], &d.nonce[..]), (&sid[..], &nonce[..]), "{sid_len}+{nonce_len} {key:?}");
                    if key.is_none() {
                        assert_eq!(&cid[1..1 + sid_len], &sid[..]);
                    } else if sid_len >= 4 {
                        // Encrypted: the server ID is not in the clear
                        // (a shorter one matches by chance too often).
                        assert_ne!(&cid[1..1 + sid_len], &sid[..], "{sid_len}+{nonce_len}");
                    }
                }
            }
        }
    }
}

/// A change of one nonce bit changes the encrypted server ID octets (the
/// point of encrypting: CIDs of one server look unrelated).
#[test]
fn encrypted_cids_of_one_server_look_unrelated() {
    for (sid_len, nonce_len) in [(3, 4), (8, 8), (10, 5), (9, 9), (2, 13)] {
        let layout = Layout::new(0, sid_len, nonce_len, Some(key(KEY_B))).unwrap();
        let sid = vec![0x42; sid_len];
        let mut nonce = vec![0u8; nonce_len];
        let a = layout.encode(&sid, &nonce, FirstOctet::Worker(0)).unwrap();
        *nonce.last_mut().unwrap() ^= 1;
        let b = layout.encode(&sid, &nonce, FirstOctet::Worker(0)).unwrap();
        assert_ne!(a[1..1 + sid_len], b[1..1 + sid_len], "{sid_len}+{nonce_len}");
    }
}

#[test]
fn first_octet_carries_config_id_and_the_chosen_low_bits() {
    let c = Config::new(6, &[1, 2], 13, Some(key(KEY_B))).unwrap();
    for w in 0..=31 {
        let cid = c.generate(FirstOctet::Worker(w)).unwrap();
        assert_eq!(cid[0], 6 << 5 | w);
        assert!(c.is_own(&cid));
    }
    assert_eq!(c.generate(FirstOctet::Worker(32)), Err(EncodeError::Worker(32)));
    assert_eq!(c.generate(FirstOctet::Length).unwrap()[0], 6 << 5 | 15);
    // Random low bits: 64 draws all alike would be a 2^-310 fluke.
    let lows: std::collections::HashSet<u8> =
        (0..64).map(|_| c.generate(FirstOctet::Random).unwrap()[0] & LOW_BITS_MASK).collect();
    assert!(lows.len() > 1);
    assert!((0..64).all(|_| config_id_of(&c.generate(FirstOctet::Random).unwrap()) == Some(6)));
}

#[test]
fn generated_cids_are_fresh_and_own() {
    let plain = Config::new(0, &[0xab, 0xcd], 13, None).unwrap();
    let keyed = Config::new(1, &[0xab, 0xcd], 13, Some(key(KEY_B))).unwrap();
    for c in [&plain, &keyed] {
        let cids: std::collections::HashSet<Vec<u8>> =
            (0..1000).map(|_| c.generate(FirstOctet::Worker(3)).unwrap().to_vec()).collect();
        assert_eq!(cids.len(), 1000);
        assert!(cids.iter().all(|cid| c.is_own(cid) && cid.len() == 16));
    }
    // The plaintext layout shows the server ID right after the first
    // octet (what `--server-id` alone will configure).
    assert_eq!(&plain.generate(FirstOctet::Random).unwrap()[1..3], &[0xab, 0xcd]);
}

#[test]
fn invalid_configurations_are_refused() {
    assert_eq!(Layout::new(7, 3, 4, None).unwrap_err(), ConfigError::ConfigId(7));
    assert_eq!(Layout::new(8, 3, 4, None).unwrap_err(), ConfigError::ConfigId(8));
    assert_eq!(Layout::new(0, 0, 4, None).unwrap_err(), ConfigError::ServerIdLen(0));
    assert_eq!(Layout::new(0, 16, 4, None).unwrap_err(), ConfigError::ServerIdLen(16));
    assert_eq!(Layout::new(0, 3, 3, None).unwrap_err(), ConfigError::NonceLen(3));
    assert_eq!(Layout::new(0, 1, 19, None).unwrap_err(), ConfigError::NonceLen(19));
    assert_eq!(Layout::new(0, 15, 5, None).unwrap_err(), ConfigError::TooLong(20));
    assert!(Layout::new(6, 15, 4, None).is_ok());
    assert!(Layout::new(0, 1, 18, Some([0; 16])).is_ok());
    assert!(Config::new(0, &[0; 16], 4, None).is_err());
    assert!(Config::new(0, &[], 4, None).is_err());
}

#[test]
fn wrong_inputs_to_encode_are_refused() {
    let l = Layout::new(0, 3, 4, None).unwrap();
    assert_eq!(l.encode(&[1, 2], &[0; 4], FirstOctet::Length), Err(EncodeError::ServerIdLen { expected: 3, got: 2 }));
    assert_eq!(l.encode(&[1, 2, 3], &[0; 5], FirstOctet::Length), Err(EncodeError::NonceLen { expected: 4, got: 5 }));
}

#[test]
fn decode_refuses_other_configs_short_and_unroutable_cids() {
    let l = Layout::new(0, 3, 4, Some(key(KEY_B))).unwrap();
    let cid = hex("0720b1d07b359d3c");
    assert_eq!(l.decode(&[]), Err(DecodeError::Empty));
    assert_eq!(l.decode(&hex("2720b1d07b359d3c")), Err(DecodeError::UnknownConfig(1)));
    assert_eq!(l.decode(&hex("e720b1d07b359d3c")), Err(DecodeError::Unroutable));
    assert_eq!(l.decode(&cid[..7]), Err(DecodeError::TooShort { need: 8, got: 7 }));
    // Octets a server appended for its own use are ignored.
    let mut longer = cid.clone();
    longer.extend_from_slice(&[9, 9]);
    assert_eq!(&l.decode(&longer).unwrap().server_id[..], &hex("ed793a")[..]);
    // Another server's CID is not ours; neither is a flipped bit's.
    let mine = Config::new(0, &hex("ed793a"), 4, Some(key(KEY_B))).unwrap();
    let other = Config::new(0, &hex("ed793b"), 4, Some(key(KEY_B))).unwrap();
    assert!(mine.is_own(&cid) && !other.is_own(&cid));
    let mut flipped = cid.clone();
    flipped[2] ^= 0x01;
    assert!(!mine.is_own(&flipped));
}

/// A load balancer holding several configurations picks by config ID:
/// the Appendix B vectors decode side by side through one decoder.
#[test]
fn decoder_picks_the_layout_by_config_id() {
    let mut d = Decoder::new();
    assert!(d.insert(Layout::new(0, 3, 4, Some(key(KEY_B))).unwrap()).is_none());
    d.insert(Layout::new(1, 10, 5, Some(key(KEY_B))).unwrap());
    d.insert(Layout::new(2, 8, 8, Some(key(KEY_B))).unwrap());
    assert_eq!(&d.decode(&hex("0720b1d07b359d3c")).unwrap().server_id[..], &hex("ed793a")[..]);
    assert_eq!(&d.decode(&hex("2fcc381bc74cb4fbad2823a3d1f8fed2")).unwrap().server_id[..],
               &hex("ed793a51d49b8f5fab65")[..]);
    assert_eq!(&d.decode(&hex("504dd2d05a7b0de9b2b9907afb5ecf8cc3")).unwrap().server_id[..],
               &hex("ed793a51d49b8f5f")[..]);
    assert_eq!(d.decode(&hex("6011223344556677")), Err(DecodeError::UnknownConfig(3)));
    assert_eq!(d.decode(&hex("f011223344556677")), Err(DecodeError::Unroutable));
    assert_eq!(d.decode(&[]), Err(DecodeError::Empty));
    // Rotation: config 0 replaced by a plaintext layout.
    assert!(d.insert(Layout::new(0, 3, 4, None).unwrap()).is_some());
    assert_eq!(&d.decode(&hex("07c4605e4504cc4f")).unwrap().server_id[..], &hex("c4605e")[..]);
    assert!(d.remove(0).is_some() && d.remove(0).is_none() && d.remove(9).is_none());
    assert_eq!(d.decode(&hex("07c4605e4504cc4f")), Err(DecodeError::UnknownConfig(0)));
}

#[test]
fn debug_output_never_shows_the_key() {
    let c = Config::new(0, &[1], 4, Some(key(KEY_B))).unwrap();
    let s = format!("{c:?} {:?}", c.layout());
    assert!(!s.contains("8f") && !s.contains("143"), "{s}");
    assert!(s.contains("FourPass"), "{s}");
}

// -- Generator and its nonce counter --------------------------------------

#[test]
fn generator_without_key_draws_random_nonces() {
    let mut g = Generator::new(Config::new(0, &[7], 4, None).unwrap(), Some(2)).unwrap();
    assert!(g.counter.is_none());
    let a = g.next_cid().unwrap();
    let b = g.next_cid().unwrap();
    assert_ne!(a, b);
    assert_eq!((a[0], a[1], a.len()), (2, 7, 6));
}

#[test]
fn generator_with_key_counts_inside_its_workers_partition() {
    let config = Config::new(0, &[7, 7, 7], 4, Some(key(KEY_B))).unwrap();
    let mut g = Generator::new(config.clone(), Some(21)).unwrap();
    let mut prev: Option<u32> = None;
    for _ in 0..100 {
        let cid = g.next_cid().unwrap();
        assert_eq!(cid[0], 21);
        let d = config.layout().decode(&cid).unwrap();
        assert_eq!(&d.server_id[..], &[7, 7, 7]);
        assert_eq!(d.nonce[0] >> 3, 21, "worker in the nonce's top five bits");
        let n = u32::from_be_bytes(d.nonce[..].try_into().unwrap()) & 0x07ff_ffff;
        if let Some(p) = prev {
            assert_eq!(n, (p + 1) & 0x07ff_ffff, "counts by one");
        }
        prev = Some(n);
    }
    assert_eq!(Generator::new(config, Some(32)).unwrap_err(), EncodeError::Worker(32));
}

#[test]
fn two_workers_never_share_a_nonce() {
    let config = Config::new(0, &[1], 4, Some(key(KEY_B))).unwrap();
    let nonces = |w| {
        let mut g = Generator::new(config.clone(), Some(w)).unwrap();
        (0..200).map(|_| config.layout().decode(&g.next_cid().unwrap()).unwrap().nonce).collect::<Vec<_>>()
    };
    let (a, b) = (nonces(0), nonces(1));
    assert!(a.iter().all(|n| !b.contains(n)));
}

#[test]
fn counter_wraps_inside_the_partition_and_stops_where_it_started() {
    // Worker 9: top five bits 01001; the 27 bits below count.
    let mut c = NonceCounter::new(4, Some(9));
    c.start = Octets::from_slice(&[0x4a, 0x00, 0x00, 0x00]).unwrap();
    c.next = Octets::from_slice(&[0x4f, 0xff, 0xff, 0xfe]).unwrap();
    assert_eq!(&c.take().unwrap()[..], &[0x4f, 0xff, 0xff, 0xfe]);
    assert_eq!(&c.take().unwrap()[..], &[0x4f, 0xff, 0xff, 0xff]);
    // Wraps to the partition's zero, keeping the worker bits.
    assert_eq!(&c.take().unwrap()[..], &[0x48, 0x00, 0x00, 0x00]);
    c.next = Octets::from_slice(&[0x49, 0xff, 0xff, 0xff]).unwrap();
    assert_eq!(&c.take().unwrap()[..], &[0x49, 0xff, 0xff, 0xff]);
    // The next one would be the start: exhausted, and it stays so.
    assert_eq!(c.take(), Err(NonceSpaceExhausted));
    assert_eq!(c.take(), Err(NonceSpaceExhausted));
    // Without a worker the whole first octet counts.
    let mut c = NonceCounter::new(4, None);
    c.start = Octets::from_slice(&[0x10, 0, 0, 0]).unwrap();
    c.next = Octets::from_slice(&[0xff, 0xff, 0xff, 0xff]).unwrap();
    c.take().unwrap();
    assert_eq!(&c.next[..], &[0, 0, 0, 0]);
}

#[test]
fn generator_reports_exhaustion() {
    let mut g = Generator::new(Config::new(0, &[1], 4, Some(key(KEY_B))).unwrap(), None).unwrap();
    let counter = g.counter.as_mut().unwrap();
    counter.next = counter.start;
    // Step to the last nonce before the start.
    let n = counter.next.as_mut_slice();
    let v = u32::from_be_bytes(n[..].try_into().unwrap()).wrapping_sub(1);
    n.copy_from_slice(&v.to_be_bytes());
    assert!(g.next_cid().is_ok());
    assert_eq!(g.next_cid(), Err(NonceSpaceExhausted));
}
