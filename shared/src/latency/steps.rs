//! The byte form of a histogram's steps: one step (and its count) as LEB128 varints, a count of
//! one folded into the step's lowest bit.

use super::Steps;

/// Where steps and varints are written: a histogram's steps or an encoded histogram.
pub(super) trait ByteSink {
    fn push_byte(&mut self, byte: u8);
}

impl ByteSink for Vec<u8> {
    #[inline(always)]
    fn push_byte(&mut self, byte: u8) {
        self.push(byte);
    }
}

impl ByteSink for Steps {
    #[inline(always)]
    fn push_byte(&mut self, byte: u8) {
        self.push(byte);
    }
}

#[inline(always)]
pub(super) fn push_step(out: &mut impl ByteSink, step: u64, count: u64) {
    if count == 1 && step < 64 {
        out.push_byte(((step as u8) << 1) | 1);
    } else if count == 1 {
        push_varint(out, (step << 1) | 1);
    } else {
        push_varint(out, step << 1);
        push_varint(out, count);
    }
}

#[inline(always)]
pub(super) fn next_step(steps: &mut &[u8]) -> Option<(u64, u64)> {
    // The usual entry of a millisecond log: a one-byte step with a count of one.
    if let Some((&byte, rest)) = steps.split_first() {
        if byte & 0x81 == 0x01 {
            *steps = rest;
            return Some((u64::from(byte >> 1), 1));
        }
    }
    let head = read_varint(steps)?;
    let count = if head & 1 == 1 {
        1
    } else {
        read_varint(steps)?
    };
    Some((head >> 1, count))
}

#[inline]
pub(super) fn push_varint(out: &mut impl ByteSink, mut value: u64) {
    while value >= 0x80 {
        out.push_byte((value as u8) | 0x80);
        value >>= 7;
    }
    out.push_byte(value as u8);
}

#[inline]
pub(super) fn read_varint(bytes: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = bytes.split_first()?;
        *bytes = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}
