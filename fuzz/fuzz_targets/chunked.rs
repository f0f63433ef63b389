//! sluice's chunked decoder (the upstream client's, for response bodies: request bodies
//! that are chunked are decoded by hyper, which sluice hands such requests to).
//!
//! Input: one byte `n`, then `n % 8` bytes giving the read lengths, then the body.
//!
//! Invariants:
//! - fed whole, in the reads the input gives, or byte by byte (61 by 61 past 512 bytes), it decodes to the same data
//!   and the same end (complete with the same bytes after it, incomplete, or refused);
//! - no empty data frame;
//! - a body it decodes, re-encoded (one chunk per frame, then the bytes that followed it),
//!   decodes to the same data and the same following bytes;
//! - against a reference decoder of RFC 9112 7.1: a body the strict grammar accepts (within
//!   sluice's documented limits: chunk-size line up to 4 KiB, size up to 15 hex digits,
//!   trailers up to 16 KiB) decodes to the same data, ending at the same byte; and a body
//!   sluice decodes is one the grammar accepts once its leniencies are granted (any
//!   non-control byte in extensions, SP/HTAB/bare CR before `;`), ending at the same byte.
//!   The end is what matters most: a disagreement on it desynchronises the connection.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice::fuzzing::{Chunked, decode_chunked};
use sluice_fuzz::reads;

fn data(c: &Chunked) -> Vec<u8> {
    c.frames.concat()
}

/// The outcome, comparable: `Some(Some(rest))` complete, `Some(None)` incomplete, `None`
/// refused.
fn end(c: &Chunked) -> Option<Option<Vec<u8>>> {
    c.end.as_ref().ok().cloned()
}

/// Reference decoder. `Ok(Some((data, end)))` complete, `Ok(None)` incomplete, `Err` not
/// chunked. `lenient`: what sluice deliberately accepts beyond the grammar.
fn reference(input: &[u8], lenient: bool) -> Result<Option<(Vec<u8>, usize)>, ()> {
    let mut at = 0;
    let mut out = Vec::new();
    let line = |at: usize| -> Option<(usize, usize)> {
        // (end of line content, start of next line); CRLF required.
        let lf = input[at..].iter().position(|&b| b == b'\n')? + at;
        Some((lf.checked_sub(1).filter(|&cr| cr >= at && input[cr] == b'\r').map_or(usize::MAX, |cr| cr), lf + 1))
    };
    loop {
        let Some((content_end, next)) = line(at) else {
            return Ok(None);
        };
        if content_end == usize::MAX {
            return Err(());
        }
        let l = &input[at..content_end];
        let digits = l.iter().take_while(|b| b.is_ascii_hexdigit()).count();
        if digits == 0 || digits > 15 || l.len() > 4096 {
            return Err(());
        }
        let size = u64::from_str_radix(std::str::from_utf8(&l[..digits]).unwrap(), 16).unwrap();
        if !chunk_ext(&l[digits..], lenient) {
            return Err(());
        }
        at = next;
        if size == 0 {
            break;
        }
        let size = usize::try_from(size).map_err(|_| ())?;
        if input.len() - at < size.saturating_add(2) {
            return Ok(None);
        }
        out.extend_from_slice(&input[at..at + size]);
        at += size;
        if &input[at..at + 2] != b"\r\n" {
            return Err(());
        }
        at += 2;
    }
    // Trailer section: field lines (lenient: any line), then an empty line.
    let start = at;
    loop {
        let Some((content_end, next)) = line(at) else {
            return Ok(None);
        };
        if content_end == usize::MAX {
            return Err(());
        }
        if content_end == at {
            return Ok(Some((out, next)));
        }
        // Up to 16 KiB of field lines, counted with their CRLFs.
        if next - start > 16 * 1024 {
            return Err(());
        }
        if !lenient && !field_line(&input[at..content_end]) {
            return Err(());
        }
        at = next;
    }
}

fn tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// `*( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )`.
fn chunk_ext(mut ext: &[u8], lenient: bool) -> bool {
    let bws = |b: &u8| *b == b' ' || *b == b'\t' || (lenient && *b == b'\r');
    if lenient {
        let after = ext.iter().position(|b| !bws(b)).unwrap_or(ext.len());
        ext = &ext[after..];
        return ext.is_empty()
            || (ext[0] == b';' && !ext.iter().any(|&b| b < 0x20 && b != b'\t' || b == 0x7f));
    }
    let skip = |e: &mut &[u8]| {
        while e.first().is_some_and(bws) {
            *e = &e[1..];
        }
    };
    let token = |e: &mut &[u8]| {
        let n = e.iter().take_while(|&&b| tchar(b)).count();
        *e = &e[n..];
        n > 0
    };
    loop {
        skip(&mut ext);
        if ext.is_empty() {
            return true;
        }
        if ext[0] != b';' {
            return false;
        }
        ext = &ext[1..];
        skip(&mut ext);
        if !token(&mut ext) {
            return false;
        }
        skip(&mut ext);
        if ext.first() == Some(&b'=') {
            ext = &ext[1..];
            skip(&mut ext);
            if ext.first() == Some(&b'"') {
                ext = &ext[1..];
                loop {
                    match ext.first() {
                        Some(b'"') => break,
                        Some(b'\\') if ext.len() >= 2 => ext = &ext[2..],
                        Some(&b) if b == b'\t' || (0x20..0x7f).contains(&b) || b >= 0x80 => {
                            ext = &ext[1..]
                        }
                        _ => return false,
                    }
                }
                ext = &ext[1..];
            } else if !token(&mut ext) {
                return false;
            }
        }
    }
}

/// `field-name ":" OWS field-value OWS`, loosely (no obs-fold).
fn field_line(l: &[u8]) -> bool {
    let Some(colon) = l.iter().position(|&b| b == b':') else {
        return false;
    };
    colon > 0
        && l[..colon].iter().all(|&b| tchar(b))
        && l[colon + 1..].iter().all(|&b| b == b'\t' || b >= 0x20 && b != 0x7f)
}

fuzz_target!(|input: &[u8]| {
    let Some((&n, rest)) = input.split_first() else {
        return;
    };
    let lens = &rest[..usize::from(n % 8).min(rest.len())];
    let body = &rest[lens.len()..];

    let whole = decode_chunked([body]);
    let split = decode_chunked(reads(body, lens));
    // Byte by byte only for short bodies: the reads above split long ones.
    let bytes = decode_chunked(body.chunks(if body.len() <= 512 { 1 } else { 61 }));
    for other in [&split, &bytes] {
        assert_eq!(end(&whole), end(other), "whole {whole:?}\nsplit {other:?}");
        assert_eq!(data(&whole), data(other));
    }
    for c in [&whole, &split, &bytes] {
        assert!(c.frames.iter().all(|f| !f.is_empty()), "empty frame");
    }

    if let Ok(Some(rest)) = &whole.end {
        let mut encoded = Vec::new();
        for f in &whole.frames {
            encoded.extend_from_slice(format!("{:x}\r\n", f.len()).as_bytes());
            encoded.extend_from_slice(f);
            encoded.extend_from_slice(b"\r\n");
        }
        encoded.extend_from_slice(b"0\r\n\r\n");
        encoded.extend_from_slice(rest);
        let again = decode_chunked([&encoded[..]]);
        assert_eq!(data(&again), data(&whole));
        assert_eq!(end(&again), Some(Some(rest.clone())));
    }

    match reference(body, false) {
        Ok(Some((expected, at))) => {
            assert_eq!(end(&whole), Some(Some(body[at..].to_vec())), "valid body refused or ended elsewhere");
            assert_eq!(data(&whole), expected);
        }
        Ok(None) | Err(()) => {}
    }
    if let Ok(Some(rest)) = &whole.end {
        match reference(body, true) {
            Ok(Some((expected, at))) => {
                assert_eq!(&body[at..], &rest[..], "ended elsewhere than the grammar says");
                assert_eq!(data(&whole), expected);
            }
            other => panic!("decoded a body the grammar refuses: {other:?}"),
        }
    }
});
