//! Datagrams on a connection, for the server and the client alike: QUIC
//! DATAGRAM frames as they are (RFC 9221), and on HTTP/3 the HTTP
//! Datagrams of RFC 9297, each bound to a request stream by a Quarter
//! Stream ID (the stream ID divided by four, a QUIC varint) in front of
//! its payload. Here: that framing, the checks before a send (with a
//! clear reason when it cannot go), where a received datagram goes, and
//! the counts the host reads.
//!
//! quiche keeps its own queues (`quiche_config_enable_dgram`'s lengths):
//! a send on a full send queue is refused (never dropped: the host gets
//! "again" and, once there is room, a writable event); a datagram that
//! arrives on a full receive queue makes quiche discard the oldest. The
//! application layer empties the receive queue after every batch of
//! packets it is given, and counts what quiche discarded (received minus
//! taken) with what no one took.

use super::framing::{Datagrams, Framing};
use crate::transport::Transport;

/// H3_DATAGRAM_ERROR (RFC 9297 §5.2): a malformed HTTP Datagram.
pub const H3_DATAGRAM_ERROR: u64 = 0x33;

/// The largest Quarter Stream ID (RFC 9297 §2.1: 2^60 - 1).
const MAX_QUARTER_ID: u64 = (1 << 60) - 1;

/// Why a datagram was not sent.
#[derive(Debug, PartialEq, Eq)]
pub enum DgramError {
    /// The handshake has not completed: the peer's limits are not known.
    NotYet,
    /// The connection is closing or closed.
    Closed,
    /// The peer takes none (the reason, in words).
    Unsupported(&'static str),
    /// Larger than the peer (and the path) take; the largest payload that
    /// fits now.
    TooLarge(usize),
    /// quiche's send queue is full: a writable event follows once it has
    /// room.
    Again,
    /// quiche refused otherwise.
    Transport(String),
}

/// Bytes of the QUIC varint for `v` (v < 2^62).
pub fn varint_len(v: u64) -> usize {
    match v {
        0..=63 => 1,
        64..=16_383 => 2,
        16_384..=1_073_741_823 => 4,
        _ => 8,
    }
}

/// Appends `v` as a QUIC varint (RFC 9000 §16).
pub fn put_varint(out: &mut Vec<u8>, v: u64) {
    match varint_len(v) {
        1 => out.push(v as u8),
        2 => out.extend_from_slice(&((v as u16) | 0x4000).to_be_bytes()),
        4 => out.extend_from_slice(&((v as u32) | 0x8000_0000).to_be_bytes()),
        _ => out.extend_from_slice(&(v | 0xc000_0000_0000_0000).to_be_bytes()),
    }
}

/// The QUIC varint at the start of `p`, and its length.
pub fn read_varint(p: &[u8]) -> Option<(u64, usize)> {
    let first = *p.first()?;
    let len = 1usize << (first >> 6);
    let bytes = p.get(..len)?;
    let v = bytes[1..].iter().fold((first & 0x3f) as u64, |v, &b| (v << 8) | b as u64);
    Some((v, len))
}

/// Where a received datagram goes.
#[derive(Debug, PartialEq, Eq)]
pub enum Inbound {
    /// To the connection's datagram callback, as it is.
    Raw,
    /// An HTTP Datagram for request stream `stream`; its payload starts
    /// at `offset`.
    Http { stream: u64, offset: usize },
    /// An HTTP/3 datagram without a valid Quarter Stream ID: a connection
    /// error (H3_DATAGRAM_ERROR).
    Malformed,
}

/// On HTTP/3 every QUIC datagram is an HTTP Datagram (RFC 9297 §2.1); on
/// hq-interop, a datagram is just bytes.
pub fn classify(h3: bool, d: &[u8]) -> Inbound {
    if !h3 {
        return Inbound::Raw;
    }
    match read_varint(d) {
        Some((q, n)) if q <= MAX_QUARTER_ID => Inbound::Http { stream: q * 4, offset: n },
        _ => Inbound::Malformed,
    }
}

/// One connection's datagram bookkeeping.
#[derive(Debug, Default)]
pub struct DgramState {
    /// Datagrams taken out of quiche's receive queue.
    pub taken: u64,
    /// Of those, the ones the host never heard of (no callback, or a
    /// request already over).
    pub dropped: u64,
    /// A send found quiche's queue full: the host waits for room.
    pub blocked: bool,
}

impl DgramState {
    /// Received datagrams the host never heard of, given quiche's count of
    /// received ones: what quiche discarded from its full receive queue
    /// (or still holds at the end), and what no one took.
    pub fn dropped_total(&self, quiche_recv: u64) -> u64 {
        quiche_recv.saturating_sub(self.taken) + self.dropped
    }

    /// Whether the host, refused for a full queue, should now hear that
    /// there is room (once per refusal).
    pub fn writable_due<C: Datagrams>(&mut self, conn: &C) -> bool {
        if self.blocked && !conn.is_dgram_send_queue_full() {
            self.blocked = false;
            return true;
        }
        false
    }

    /// Takes every datagram quiche received. `deliver(d, Some((stream,
    /// offset)))` is asked to take an HTTP Datagram for the request on
    /// `stream` (payload at `offset`) and hands it back when no request
    /// has that stream; `deliver(d, None)` takes any other. A malformed
    /// HTTP/3 datagram closes the connection (H3_DATAGRAM_ERROR) and
    /// ends the reading. Returns whether the host, refused for a full
    /// queue, should now hear that there is room.
    pub fn take_all<C: Transport + Datagrams>(&mut self, conn: &mut C, h3: bool,
                                              mut deliver: impl FnMut(Vec<u8>, Option<(u64, usize)>) -> Option<Vec<u8>>)
                                              -> bool {
        while let Some(d) = conn.dgram_recv_vec() {
            self.taken += 1;
            let d = match classify(h3, &d) {
                Inbound::Http { stream, offset } => match deliver(d, Some((stream, offset))) {
                    Some(d) => d,
                    None => continue,
                },
                Inbound::Malformed => {
                    log_warn!("an HTTP/3 datagram without a valid Quarter Stream ID: closing (H3_DATAGRAM_ERROR)");
                    self.dropped += 1;
                    let _ = conn.close(true, H3_DATAGRAM_ERROR, b"malformed HTTP datagram");
                    return false;
                }
                Inbound::Raw => d,
            };
            deliver(d, None);
        }
        self.writable_due(conn)
    }

    /// A send's outcome, remembering a refusal for a full queue.
    pub fn note(&mut self, r: Result<(), DgramError>) -> Result<(), DgramError> {
        if r == Err(DgramError::Again) {
            self.blocked = true;
        }
        r
    }
}

/// The largest QUIC datagram payload the peer takes now.
pub fn max_len<C: Transport + Datagrams>(conn: &C) -> Result<usize, DgramError> {
    if conn.is_closed() || conn.close_info().error.is_some() {
        return Err(DgramError::Closed);
    }
    if !conn.is_established() {
        return Err(DgramError::NotYet);
    }
    conn.dgram_max_writable_len()
        .ok_or(DgramError::Unsupported("the peer does not accept QUIC datagrams (its transport parameters \
                                        have no max_datagram_frame_size)"))
}

/// Queues one QUIC datagram.
pub fn send<C: Transport + Datagrams>(conn: &mut C, data: &[u8]) -> Result<(), DgramError> {
    let max = max_len(conn)?;
    if data.len() > max {
        return Err(DgramError::TooLarge(max));
    }
    match conn.dgram_send(data) {
        Ok(()) => Ok(()),
        // A queue that is full while empty holds nothing at all: quiche's
        // default, without `enable_dgram` (waiting would be forever).
        Err(quiche::Error::Done) if conn.dgram_send_queue_len() == 0 => {
            Err(DgramError::Unsupported("datagrams are not enabled in this side's quiche_config \
                                         (quiche_config_enable_dgram): quiche's send queue holds none"))
        }
        Err(quiche::Error::Done) => Err(DgramError::Again),
        Err(quiche::Error::BufferTooShort) => Err(DgramError::TooLarge(max)),
        Err(quiche::Error::InvalidState) => Err(DgramError::Unsupported("the peer does not accept QUIC datagrams")),
        Err(e) => Err(DgramError::Transport(format!("{e:?}"))),
    }
}

/// The largest HTTP Datagram payload for request stream `stream` (what is
/// left after its Quarter Stream ID).
pub fn http_max_len<C: Transport + Datagrams, F: Framing<C>>(conn: &C, framing: &F, stream: u64)
                                                            -> Result<usize, DgramError> {
    if !framing.is_h3() {
        return Err(DgramError::Unsupported("hq-interop has no HTTP datagrams"));
    }
    let max = max_len(conn)?;
    match framing.peer_settings(conn) {
        None => Err(DgramError::Unsupported("the peer's HTTP/3 SETTINGS have not arrived yet")),
        Some(s) if !s.datagrams => {
            Err(DgramError::Unsupported("the peer did not enable HTTP/3 datagrams (SETTINGS_H3_DATAGRAM)"))
        }
        Some(_) => Ok(max.saturating_sub(varint_len(stream / 4))),
    }
}

/// Queues one HTTP Datagram on request stream `stream`.
pub fn send_http<C: Transport + Datagrams, F: Framing<C>>(conn: &mut C, framing: &F, stream: u64, payload: &[u8])
                                                         -> Result<(), DgramError> {
    let max = http_max_len(conn, framing, stream)?;
    if payload.len() > max {
        return Err(DgramError::TooLarge(max));
    }
    let mut d = Vec::with_capacity(varint_len(stream / 4) + payload.len());
    put_varint(&mut d, stream / 4);
    d.extend_from_slice(payload);
    send(conn, &d).map_err(|e| match e {
        DgramError::TooLarge(_) => DgramError::TooLarge(max),
        e => e,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_at_every_length() {
        for v in [0, 63, 64, 16_383, 16_384, 1_073_741_823, 1_073_741_824, (1 << 62) - 1] {
            let mut b = Vec::new();
            put_varint(&mut b, v);
            assert_eq!(b.len(), varint_len(v));
            assert_eq!(read_varint(&b), Some((v, b.len())), "{v}");
        }
        assert_eq!(read_varint(&[]), None);
        assert_eq!(read_varint(&[0x40]), None, "a 2-byte varint cut short");
    }

    #[test]
    fn http3_datagrams_name_their_request_stream_by_a_quarter_id() {
        assert_eq!(classify(false, &[0xff]), Inbound::Raw);
        assert_eq!(classify(true, &[0x00, 0x00, 7]), Inbound::Http { stream: 0, offset: 1 });
        assert_eq!(classify(true, &[0x01, 9]), Inbound::Http { stream: 4, offset: 1 });
        assert_eq!(classify(true, &[0x40, 0x40]), Inbound::Http { stream: 256, offset: 2 });
        assert_eq!(classify(true, &[]), Inbound::Malformed, "no Quarter Stream ID at all");
        assert_eq!(classify(true, &[0x80, 0]), Inbound::Malformed, "cut short");
        let mut big = Vec::new();
        put_varint(&mut big, 1 << 60);
        assert_eq!(classify(true, &big), Inbound::Malformed, "above 2^60 - 1");
    }

    #[test]
    fn dropped_counts_what_quiche_discarded_and_what_no_one_took() {
        let mut s = DgramState { taken: 7, dropped: 2, blocked: false };
        assert_eq!(s.dropped_total(10), 5);
        assert_eq!(s.note(Err(DgramError::TooLarge(3))), Err(DgramError::TooLarge(3)));
        assert!(!s.blocked);
        assert_eq!(s.note(Err(DgramError::Again)), Err(DgramError::Again));
        assert!(s.blocked);
    }
}
