//! The `frames` corpus format, shared by the fuzzing harnesses: repeated
//! `[len_hi, len_lo, frame bytes...]`; a length past the end takes what is left, and
//! a tail too short for a length is one last frame.

/// The frames in `data`, in order.
pub fn frames(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = data;
    core::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let (frame, tail) = match rest {
            [hi, lo, tail @ ..] => {
                let len = usize::from(u16::from_be_bytes([*hi, *lo])).min(tail.len());
                tail.split_at(len)
            }
            _ => (rest, &[][..]),
        };
        rest = tail;
        Some(frame)
    })
}
