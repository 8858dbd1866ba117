//! The `tcpstats` fuzzing harness, shared by the cargo-fuzz target and the stable
//! replay test: arbitrary bytes become frames the tracker reads as sent and received,
//! and its counts must stay consistent.

// Each harness stands alone in its fuzz target; the replay test includes both, so
// it sees this file twice.
#[allow(clippy::duplicate_mod)]
#[path = "../harness/frames.rs"]
mod frames;

use oasis_net::tcpstats::{Segment, TcpTracker};

/// Input format: repeated `[len_hi, len_lo, frame bytes...]` (the `frames` corpus
/// format); a short tail is one last frame. Even frames are "sent", odd "received".
pub fn run(data: &[u8]) {
    let mut t = TcpTracker::new();
    let mut sending = true;
    for frame in frames::frames(data) {
        if let Some(s) = Segment::parse(frame) {
            // The segment's sequence space is what its payload length says at most.
            assert!(s.len as usize <= frame.len() + 2);
        }
        // Each frame twice: the second send of anything with sequence space is a
        // retransmission, so the counters move.
        for _ in 0..2 {
            if sending {
                t.sent(frame);
            } else {
                t.received(frame);
            }
        }
        sending = !sending;
        let c = t.counts();
        assert!(c.retransmits <= c.segments_sent, "{c:?}");
        assert!(c.resets_sent <= c.segments_sent, "{c:?}");
    }
}
