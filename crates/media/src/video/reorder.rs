//! Puts a video stream's RTP packets back in order and waits a little for missing ones.
//!
//! A packet lost on the way is asked for again (NACK) and arrives about a round trip later, after the
//! packets sent behind it. Passing those on at once would break the frame they belong to and every frame
//! after it until a keyframe; holding them for as long as a retransmission takes lets the gap fill, and
//! only a gap that is still open after that is given up (the decoder then waits for a keyframe). Packets
//! that arrive in order pass straight through, so a clean path costs no delay. Pure: the clock is passed
//! in.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// The most packets held behind one gap; more means the sender restarted or the gap will not fill.
const MAX_HELD: usize = 2048;

/// Extends 16-bit RTP sequence numbers past wrap-around: each becomes the 64-bit number nearest the
/// highest seen so far.
#[derive(Debug, Default)]
pub(crate) struct SequenceExtender {
    highest: Option<u64>,
}

impl SequenceExtender {
    /// The highest extended number seen so far.
    pub(crate) fn highest(&self) -> Option<u64> {
        self.highest
    }

    /// The extended form of `sequence`, remembered if it is the highest.
    pub(crate) fn extend(&mut self, sequence: u16) -> u64 {
        let Some(highest) = self.highest else {
            // Start well above zero so that packets just before the first one still extend.
            let extended = (1 << 16) + u64::from(sequence);
            self.highest = Some(extended);
            return extended;
        };
        let delta = sequence.wrapping_sub(highest as u16) as i16;
        let extended = highest.saturating_add_signed(i64::from(delta));
        self.highest = Some(highest.max(extended));
        extended
    }
}

/// What comes out of the buffer, in sequence order.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Released<P> {
    /// The next packet.
    Packet(P),
    /// These many packets before the next one never came and are given up.
    Lost(u64),
}

/// See the module documentation.
#[derive(Debug)]
pub(crate) struct ReorderBuffer<P> {
    /// How long a gap may stay open before the packets behind it go on without it.
    hold: Duration,
    /// The extended sequence number of the next packet to release.
    next: Option<u64>,
    /// Packets that arrived ahead of a gap, with their arrival time.
    held: BTreeMap<u64, (P, Instant)>,
    sequences: SequenceExtender,
    /// Packets that came after their place was released or given up (duplicates, too-late retransmissions).
    late: u64,
}

impl<P> ReorderBuffer<P> {
    /// A buffer that holds packets behind a gap for at most `hold`.
    pub(crate) fn new(hold: Duration) -> Self {
        Self { hold, next: None, held: BTreeMap::new(), sequences: SequenceExtender::default(), late: 0 }
    }

    /// Changes how long a gap may stay open (it follows the round-trip time).
    pub(crate) fn set_hold(&mut self, hold: Duration) {
        self.hold = hold;
    }

    /// Packets that arrived too late to be of use or twice.
    pub(crate) fn late(&self) -> u64 {
        self.late
    }

    /// Takes one packet as it arrives.
    pub(crate) fn push(&mut self, sequence: u16, packet: P, now: Instant) {
        let extended = self.sequences.extend(sequence);
        let next = *self.next.get_or_insert(extended);
        if extended < next || self.held.contains_key(&extended) {
            self.late += 1;
            return;
        }
        self.held.insert(extended, (packet, now));
    }

    /// The next packet or gap ready to go on, if any.
    pub(crate) fn pop(&mut self, now: Instant) -> Option<Released<P>> {
        let next = self.next?;
        let (&first, &(_, arrived)) = self.held.first_key_value()?;
        if first != next {
            let waited_out = now.saturating_duration_since(arrived) >= self.hold;
            if !waited_out && self.held.len() < MAX_HELD {
                return None;
            }
            self.next = Some(first);
            return Some(Released::Lost(first - next));
        }
        let (_, (packet, _)) = self.held.pop_first()?;
        self.next = Some(next + 1);
        Some(Released::Packet(packet))
    }

    /// When [`Self::pop`] will give up the open gap, if one is open.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        let next = self.next?;
        let (&first, &(_, arrived)) = self.held.first_key_value()?;
        (first != next).then(|| arrived + self.hold)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOLD: Duration = Duration::from_millis(100);

    fn drain(buffer: &mut ReorderBuffer<u16>, now: Instant) -> Vec<Released<u16>> {
        std::iter::from_fn(|| buffer.pop(now)).collect()
    }

    #[test]
    fn packets_in_order_pass_straight_through() {
        let start = Instant::now();
        let mut buffer = ReorderBuffer::new(HOLD);
        for sequence in 10..13 {
            buffer.push(sequence, sequence, start);
            assert_eq!(drain(&mut buffer, start), vec![Released::Packet(sequence)]);
        }
        assert_eq!(buffer.deadline(), None);
    }

    #[test]
    fn a_retransmission_within_the_hold_fills_the_gap() {
        let start = Instant::now();
        let mut buffer = ReorderBuffer::new(HOLD);
        buffer.push(1, 1, start);
        buffer.push(3, 3, start);
        buffer.push(4, 4, start);
        assert_eq!(drain(&mut buffer, start), vec![Released::Packet(1)]);
        assert_eq!(buffer.deadline(), Some(start + HOLD));
        let later = start + Duration::from_millis(60);
        assert!(drain(&mut buffer, later).is_empty());
        buffer.push(2, 2, later);
        assert_eq!(drain(&mut buffer, later), vec![Released::Packet(2), Released::Packet(3), Released::Packet(4)]);
        assert_eq!(buffer.late(), 0);
    }

    #[test]
    fn a_gap_still_open_after_the_hold_is_given_up_and_a_late_fill_is_dropped() {
        let start = Instant::now();
        let mut buffer = ReorderBuffer::new(HOLD);
        buffer.push(1, 1, start);
        let gap_seen = start + Duration::from_millis(5);
        buffer.push(4, 4, gap_seen);
        assert_eq!(drain(&mut buffer, start + HOLD), vec![Released::Packet(1)]);
        assert_eq!(drain(&mut buffer, gap_seen + HOLD), vec![Released::Lost(2), Released::Packet(4)]);
        buffer.push(2, 2, gap_seen + HOLD);
        buffer.push(4, 4, gap_seen + HOLD);
        assert!(drain(&mut buffer, gap_seen + HOLD).is_empty());
        assert_eq!(buffer.late(), 2);
    }

    #[test]
    fn each_gap_gets_its_own_hold_from_when_the_packet_after_it_came() {
        let start = Instant::now();
        let mut buffer = ReorderBuffer::new(HOLD);
        buffer.push(1, 1, start);
        buffer.push(3, 3, start);
        let second_gap = start + Duration::from_millis(80);
        buffer.push(5, 5, second_gap);
        let first_expired = start + HOLD;
        assert_eq!(
            drain(&mut buffer, first_expired),
            vec![Released::Packet(1), Released::Lost(1), Released::Packet(3)]
        );
        assert_eq!(buffer.deadline(), Some(second_gap + HOLD));
        buffer.push(4, 4, first_expired);
        assert_eq!(drain(&mut buffer, first_expired), vec![Released::Packet(4), Released::Packet(5)]);
    }

    #[test]
    fn sequence_numbers_wrap_around() {
        let start = Instant::now();
        let mut buffer = ReorderBuffer::new(HOLD);
        buffer.push(65534, 65534, start);
        buffer.push(0, 0, start);
        buffer.push(65535, 65535, start);
        buffer.push(1, 1, start);
        assert_eq!(
            drain(&mut buffer, start),
            vec![Released::Packet(65534), Released::Packet(65535), Released::Packet(0), Released::Packet(1)]
        );
    }

    #[test]
    fn a_flood_behind_a_gap_is_let_go_without_waiting() {
        let start = Instant::now();
        let mut buffer = ReorderBuffer::new(HOLD);
        buffer.push(0, 0, start);
        for sequence in 2..(2 + MAX_HELD as u16) {
            buffer.push(sequence, sequence, start);
        }
        let released = drain(&mut buffer, start);
        assert_eq!(released[..2], [Released::Packet(0), Released::Lost(1)]);
        assert_eq!(released.len(), 2 + MAX_HELD);
    }
}
