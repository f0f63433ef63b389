//! The strict chunked reader the smuggling guard runs over request bodies
//! (`sluice::proxy::http1::chunked`, RFC 9112 7.1 without leniencies).
//!
//! Input: one byte `n`, then `n % 8` bytes giving the read lengths, then the body.
//!
//! Invariants:
//! - fed whole or in the reads the input gives, it gives the same data and the same
//!   outcome: the same end (bytes taken), still incomplete, or refused at the same byte;
//! - a refusal at byte `at` means every byte before it can belong to a valid body: the
//!   prefix `..at` alone is not refused;
//! - a body it accepts, re-encoded as one chunk and a last chunk, is accepted, gives the
//!   same data and ends exactly at the end of the encoding.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice::proxy::http1::chunked::{ChunkedReader, Progress};
use sluice_fuzz::reads;

/// (data, outcome): `Ok(Some(end))` complete, `Ok(None)` incomplete, `Err(at)` refused at
/// absolute offset `at`.
fn read(parts: &[&[u8]]) -> (Vec<u8>, Result<Option<usize>, usize>) {
    let mut r = ChunkedReader::default();
    let mut data = Vec::new();
    let mut offset = 0;
    for part in parts {
        match r.feed(part, |d| data.extend_from_slice(d)) {
            Ok(Progress::More) => offset += part.len(),
            Ok(Progress::Done(n)) => return (data, Ok(Some(offset + n))),
            Err(e) => return (data, Err(offset + e.at)),
        }
    }
    (data, Ok(None))
}

fuzz_target!(|input: &[u8]| {
    let Some((&n, rest)) = input.split_first() else {
        return;
    };
    let split = usize::from(n % 8).min(rest.len());
    let (lens, body) = rest.split_at(split);
    let whole = read(&[body]);
    let pieces = read(&reads(body, lens));
    assert_eq!(whole, pieces, "the reads changed the outcome");
    match whole.1 {
        Err(at) => {
            let (_, prefix) = read(&[&body[..at]]);
            assert!(prefix.is_ok(), "the bytes before the refused one were refused");
        }
        Ok(Some(end)) => {
            assert!(end <= body.len());
            let data = whole.0;
            let mut encoded = Vec::new();
            if !data.is_empty() {
                encoded.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
                encoded.extend_from_slice(&data);
                encoded.extend_from_slice(b"\r\n");
            }
            encoded.extend_from_slice(b"0\r\n\r\n");
            let again = read(&[&encoded]);
            assert_eq!(again, (data, Ok(Some(encoded.len()))), "re-encoded body reads differently");
        }
        Ok(None) => {}
    }
});
