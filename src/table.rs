//! The server's connection table: who owns each connection, and which
//! connection IDs lead to it.
//!
//! - Every source CID a connection issued (its first one and every spare
//!   one given out later) maps to it until the peer retires it, so a
//!   short-header packet is routed by its DCID bytes with one lookup per
//!   CID length in use (one, unless the host changed the CID layout while
//!   connections of the old one were alive: [`Table::cid_lens`]).
//! - A client's own first DCID maps to its connection while the handshake
//!   runs without a Retry (its Initials and 0-RTT still carry it).
//! - The CIDs of a connection just freed are remembered for a while, so a
//!   late duplicate Initial cannot create a second connection.
//!
//! Entries are raw pointers from `Box::into_raw`: the table owns them; the
//! server frees them (see `server`), after stopping their timers.

use std::collections::{HashMap, VecDeque};
use std::ptr::NonNull;
use std::time::{Duration, Instant};

use crate::id_hash::{CidMap, IdMap};

/// A connection ID of ours: up to 20 bytes, held by value.
pub type Cid = crate::quic_lb::Octets;

/// A connection's number in the table. Never reused, so a stale number
/// (in a deferred list) finds nothing rather than another connection.
pub type ConnId = u64;

/// How many recently freed CIDs are remembered at most.
const MAX_TOMBSTONES: usize = 1 << 16;

struct Slot<T> {
    ptr: NonNull<T>,
    cids: Vec<Cid>,
    /// The client-chosen DCID, mapped until the handshake is done.
    odcid: Option<Vec<u8>>,
}

pub struct Table<T> {
    slots: IdMap<ConnId, Slot<T>>,
    by_cid: CidMap<Cid, ConnId>,
    by_odcid: HashMap<Vec<u8>, ConnId>,
    tombstones: HashMap<Vec<u8>, Instant>,
    tomb_order: VecDeque<(Vec<u8>, Instant)>,
    tomb_life: Duration,
    next_id: ConnId,
    /// How many mapped CIDs have each length (index: the length).
    lens: [u32; quiche::MAX_CONN_ID_LEN + 1],
}

impl<T> Table<T> {
    pub fn new(tomb_life: Duration) -> Table<T> {
        Table { slots: IdMap::default(), by_cid: CidMap::default(), by_odcid: HashMap::new(),
                tombstones: HashMap::new(), tomb_order: VecDeque::new(), tomb_life, next_id: 1,
                lens: [0; quiche::MAX_CONN_ID_LEN + 1] }
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// How long freed CIDs are remembered (at least a token's lifetime).
    pub fn set_tomb_life(&mut self, d: Duration) {
        self.tomb_life = d;
    }

    /// The number the next inserted connection gets.
    pub fn next_id(&self) -> ConnId {
        self.next_id
    }

    /// Takes ownership of `ptr` (from `Box::into_raw`) under `scid`, and
    /// `odcid` while its handshake runs. Returns its number.
    pub fn insert(&mut self, ptr: NonNull<T>, scid: Cid, odcid: Option<&[u8]>) -> ConnId {
        let id = self.next_id;
        self.next_id += 1;
        self.by_cid.insert(scid, id);
        self.lens[scid.len()] += 1;
        if let Some(o) = odcid {
            self.by_odcid.insert(o.to_vec(), id);
        }
        self.slots.insert(id, Slot { ptr, cids: vec![scid], odcid: odcid.map(<[u8]>::to_vec) });
        id
    }

    pub fn get(&self, id: ConnId) -> Option<NonNull<T>> {
        self.slots.get(&id).map(|s| s.ptr)
    }

    pub fn ids(&self) -> Vec<ConnId> {
        self.slots.keys().copied().collect()
    }

    /// The connection a DCID leads to.
    pub fn by_cid(&self, dcid: &[u8]) -> Option<ConnId> {
        self.by_cid.get(&Cid::from_slice(dcid)?).copied()
    }

    /// The lengths of the CIDs mapped now, shortest first: where a
    /// short-header packet's DCID may end (its length is not on the wire).
    pub fn cid_lens(&self) -> impl Iterator<Item = usize> + '_ {
        self.lens.iter().enumerate().filter(|(_, &n)| n > 0).map(|(len, _)| len)
    }

    /// The connection a short-header packet leads to: its DCID starts at
    /// the second byte, as long as one of the lengths in use.
    pub fn by_short_header(&self, pkt: &[u8]) -> Option<ConnId> {
        self.cid_lens().find_map(|len| self.by_cid(pkt.get(1..1 + len)?))
    }

    /// The connection whose handshake uses this client-chosen DCID.
    pub fn by_odcid(&self, dcid: &[u8]) -> Option<ConnId> {
        self.by_odcid.get(dcid).copied()
    }

    /// A spare CID `id` issued.
    pub fn map(&mut self, id: ConnId, cid: &[u8]) {
        let Some(cid) = Cid::from_slice(cid) else { return };
        if !self.slots.contains_key(&id) {
            return;
        }
        match self.by_cid.insert(cid, id) {
            Some(was) if was == id => return,
            // (Our CIDs do not repeat; should one, the newest owner wins.)
            Some(was) => {
                if let Some(s) = self.slots.get_mut(&was) {
                    s.cids.retain(|c| *c != cid);
                }
            }
            None => self.lens[cid.len()] += 1,
        }
        if let Some(slot) = self.slots.get_mut(&id) {
            slot.cids.push(cid);
        }
    }

    /// A CID the peer retired.
    pub fn unmap(&mut self, id: ConnId, cid: &[u8]) {
        let (Some(slot), Some(cid)) = (self.slots.get_mut(&id), Cid::from_slice(cid)) else { return };
        if self.by_cid.get(&cid) == Some(&id) {
            self.by_cid.remove(&cid);
            self.lens[cid.len()] -= 1;
        }
        slot.cids.retain(|c| *c != cid);
    }

    /// The handshake is done: the client no longer uses its own DCID.
    pub fn forget_odcid(&mut self, id: ConnId) {
        if let Some(o) = self.slots.get_mut(&id).and_then(|s| s.odcid.take()) {
            self.by_odcid.remove(&o);
            self.bury(o, Instant::now());
        }
    }

    /// The CIDs mapped to `id` now.
    pub fn cids(&self, id: ConnId) -> &[Cid] {
        self.slots.get(&id).map(|s| s.cids.as_slice()).unwrap_or(&[])
    }

    /// Gives the entry back (to be freed by the caller); its CIDs are
    /// unmapped and, with `bury`, remembered as recently closed. (A
    /// connection whose first packet was junk is not buried: the client's
    /// intact Initial, with the same DCID, must still make one.)
    pub fn remove(&mut self, id: ConnId, bury: bool) -> Option<NonNull<T>> {
        let slot = self.slots.remove(&id)?;
        let now = Instant::now();
        for cid in slot.cids {
            if self.by_cid.get(&cid) == Some(&id) {
                self.by_cid.remove(&cid);
                self.lens[cid.len()] -= 1;
            }
            if bury {
                self.bury(cid.to_vec(), now);
            }
        }
        if let Some(o) = slot.odcid {
            self.by_odcid.remove(&o);
            if bury {
                self.bury(o, now);
            }
        }
        Some(slot.ptr)
    }

    /// Takes every entry out (for the server's drop).
    pub fn drain(&mut self) -> Vec<NonNull<T>> {
        self.by_cid.clear();
        self.by_odcid.clear();
        self.lens = [0; quiche::MAX_CONN_ID_LEN + 1];
        self.slots.drain().map(|(_, s)| s.ptr).collect()
    }

    fn bury(&mut self, cid: Vec<u8>, now: Instant) {
        let until = now + self.tomb_life;
        self.tombstones.insert(cid.clone(), until);
        self.tomb_order.push_back((cid, until));
        self.prune(now);
    }

    fn prune(&mut self, now: Instant) {
        while let Some((cid, until)) = self.tomb_order.front() {
            if *until > now && self.tomb_order.len() <= MAX_TOMBSTONES {
                break;
            }
            if self.tombstones.get(cid) == Some(until) {
                self.tombstones.remove(cid);
            }
            self.tomb_order.pop_front();
        }
    }

    /// Whether `cid` belonged to a connection freed recently.
    pub fn is_buried(&self, cid: &[u8]) -> bool {
        self.tombstones.get(cid).is_some_and(|until| *until > Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cid(b: &[u8]) -> Cid {
        Cid::from_slice(b).unwrap()
    }

    #[test]
    fn cids_route_until_retired_and_are_remembered_after_removal() {
        let mut t: Table<u8> = Table::new(Duration::from_secs(10));
        let mut entry = Box::new(7u8);
        let ptr = NonNull::from(&mut *entry);
        let id = t.insert(ptr, cid(&[1; 16]), Some(&[9; 8]));
        assert_eq!(t.by_cid(&[1; 16]), Some(id));
        assert_eq!(t.by_odcid(&[9; 8]), Some(id));
        t.map(id, &[2; 16]);
        assert_eq!(t.by_cid(&[2; 16]), Some(id));
        t.unmap(id, &[1; 16]);
        assert_eq!(t.by_cid(&[1; 16]), None);
        t.forget_odcid(id);
        assert_eq!(t.by_odcid(&[9; 8]), None);
        assert!(t.is_buried(&[9; 8]));
        assert_eq!(t.remove(id, true), Some(ptr));
        assert_eq!(t.by_cid(&[2; 16]), None);
        assert!(t.is_buried(&[2; 16]));
        assert!(!t.is_buried(&[3; 16]));
        assert!(t.get(id).is_none(), "a freed number finds nothing");
        let id2 = t.insert(ptr, cid(&[4; 16]), None);
        assert_ne!(id, id2, "numbers are never reused");
    }

    #[test]
    fn short_headers_find_cids_of_every_length_in_use() {
        let mut t: Table<u8> = Table::new(Duration::from_secs(10));
        let mut entry = Box::new(7u8);
        let ptr = NonNull::from(&mut *entry);
        let a = t.insert(ptr, cid(&[1; 16]), None);
        let b = t.insert(ptr, cid(&[2; 11]), None);
        t.map(b, &[3; 20]);
        assert_eq!(t.cid_lens().collect::<Vec<_>>(), vec![11, 16, 20]);
        let short = |dcid: &[u8]| {
            let mut p = vec![0x40];
            p.extend_from_slice(dcid);
            p.extend_from_slice(&[0xee; 30]);
            p
        };
        assert_eq!(t.by_short_header(&short(&[1; 16])), Some(a));
        assert_eq!(t.by_short_header(&short(&[2; 11])), Some(b));
        assert_eq!(t.by_short_header(&short(&[3; 20])), Some(b));
        assert_eq!(t.by_short_header(&short(&[4; 20])), None);
        assert_eq!(t.by_short_header(&[0x40, 2, 2]), None, "too short for any length");
        t.unmap(b, &[3; 20]);
        assert_eq!(t.cid_lens().collect::<Vec<_>>(), vec![11, 16]);
        t.map(b, &[2; 11]);
        assert_eq!(t.cid_lens().collect::<Vec<_>>(), vec![11, 16], "mapping twice counts once");
        t.remove(b, false);
        assert_eq!(t.cid_lens().collect::<Vec<_>>(), vec![16]);
        t.remove(a, true);
        assert_eq!(t.cid_lens().count(), 0);
    }

    #[test]
    fn tombstones_expire_and_are_bounded() {
        let mut t: Table<u8> = Table::new(Duration::ZERO);
        t.bury(vec![1; 16], Instant::now());
        assert!(!t.is_buried(&[1; 16]), "expired at once");
        let mut t: Table<u8> = Table::new(Duration::from_secs(100));
        for i in 0..(MAX_TOMBSTONES + 10) as u32 {
            t.bury(i.to_be_bytes().to_vec(), Instant::now());
        }
        assert!(t.tomb_order.len() <= MAX_TOMBSTONES);
        assert!(!t.is_buried(&0u32.to_be_bytes()), "the oldest went first");
    }
}
