//! A strict, incremental reader of chunked request bodies (RFC 9112 7.1).
//!
//! The smuggling guard runs it over the bytes hyper is about to read, so that a body two
//! parsers could frame differently never reaches a backend: `chunk-size` is 1*HEXDIG
//! (no sign, no `0x`, no overflow); whitespace after it only as `BWS ";"` before a chunk
//! extension; an extension name is a non-empty token and its value a token or a
//! quoted-string; every line ends in CRLF (a bare LF or CR is an error); chunk data is
//! followed by exactly CRLF; trailer fields are `token ":" value` lines without control
//! characters or obs-fold. This is the set of discrepancies the 2025 "funky chunks"
//! research found between proxies and servers.
//!
//! It reads bytes, it does not own them: data is handed to a callback as slices of the
//! input, so a caller that only validates pays no copy.

use crate::proxy::server::MAX_HEADER_BYTES;

/// Where reading stopped for good.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid chunked framing at byte {at} of the input")]
pub struct ChunkError {
    /// Offset, in the input of the failing [`ChunkedReader::feed`] call, of the first byte
    /// that cannot belong to a valid chunked body. Every byte before it can.
    pub at: usize,
}

/// How far a [`ChunkedReader::feed`] call got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Every input byte belongs to the body; it goes on.
    More,
    /// The body ended after this many input bytes; the rest is the next message.
    Done(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading the hex size; `digits` seen so far.
    Size { size: u64, digits: u32 },
    /// Whitespace after the size: only `;` may follow.
    SizeSpace,
    /// After `;`: optional whitespace, then the extension name.
    ExtName { started: bool },
    /// Whitespace after an extension name: `=` or `;` follows.
    ExtAfterName,
    /// After `=`: optional whitespace, then a token or a quoted string.
    ExtValueStart,
    /// Inside a token value.
    ExtToken,
    /// Inside a quoted-string value; `escaped` after a backslash.
    ExtQuoted { escaped: bool },
    /// After a complete value: `;`, whitespace, or the line end.
    ExtValueEnd { space: bool },
    /// The LF of a chunk-size line.
    SizeLf,
    /// Chunk data left.
    Data(u64),
    /// The CR after chunk data.
    DataCr,
    /// The LF after chunk data.
    DataLf,
    /// The start of a trailer line (or of the final CRLF).
    TrailerStart,
    /// A trailer field name.
    TrailerName,
    /// A trailer field value.
    TrailerValue,
    /// The LF of a trailer line.
    TrailerLf,
    /// The LF of the final empty line.
    FinalLf,
    /// The body ended.
    Done,
}

/// Incremental chunked-body reader: feed it the bytes after the head, in any splits.
#[derive(Debug, Clone)]
pub struct ChunkedReader {
    state: State,
    /// The size of the chunk whose size line is being read.
    size: u64,
    /// Bytes of extensions and trailers read so far (bounded like a header block).
    meta: usize,
}

impl Default for ChunkedReader {
    fn default() -> Self {
        ChunkedReader {
            state: State::Size { size: 0, digits: 0 },
            size: 0,
            meta: 0,
        }
    }
}

impl ChunkedReader {
    /// Reads `input`, handing chunk data to `data` as it goes.
    ///
    /// After an error or [`Progress::Done`] the reader must not be fed again.
    pub fn feed(
        &mut self,
        input: &[u8],
        mut data: impl FnMut(&[u8]),
    ) -> Result<Progress, ChunkError> {
        let mut i = 0;
        while i < input.len() {
            if let State::Data(left) = self.state {
                let n = usize::try_from(left)
                    .unwrap_or(usize::MAX)
                    .min(input.len() - i);
                data(&input[i..i + n]);
                i += n;
                let left = left - n as u64;
                self.state = if left == 0 {
                    State::DataCr
                } else {
                    State::Data(left)
                };
                continue;
            }
            let b = input[i];
            self.state = self.step(b).ok_or(ChunkError { at: i })?;
            i += 1;
            if self.state == State::Done {
                return Ok(Progress::Done(i));
            }
        }
        Ok(Progress::More)
    }

    /// The state after byte `b`, or `None` when `b` breaks the framing.
    fn step(&mut self, b: u8) -> Option<State> {
        if !matches!(self.state, State::Size { .. } | State::Data(_)) {
            self.meta += 1;
            if self.meta > MAX_HEADER_BYTES {
                return None;
            }
        }
        let next = match self.state {
            State::Size { size, digits } => match b {
                _ if b.is_ascii_hexdigit() => {
                    let v = u64::from((b as char).to_digit(16)?);
                    let size = size.checked_mul(16)?.checked_add(v)?;
                    State::Size {
                        size,
                        digits: digits + 1,
                    }
                }
                _ if digits == 0 => return None,
                b' ' | b'\t' => {
                    self.size = size;
                    State::SizeSpace
                }
                b';' => {
                    self.size = size;
                    State::ExtName { started: false }
                }
                b'\r' => {
                    self.size = size;
                    State::SizeLf
                }
                _ => return None,
            },
            State::SizeSpace => match b {
                b' ' | b'\t' => State::SizeSpace,
                b';' => State::ExtName { started: false },
                _ => return None,
            },
            State::ExtName { started } => match b {
                b' ' | b'\t' if !started => State::ExtName { started },
                _ if is_tchar(b) => State::ExtName { started: true },
                _ if !started => return None,
                b' ' | b'\t' => State::ExtAfterName,
                b'=' => State::ExtValueStart,
                b';' => State::ExtName { started: false },
                b'\r' => State::SizeLf,
                _ => return None,
            },
            State::ExtAfterName => match b {
                b' ' | b'\t' => State::ExtAfterName,
                b'=' => State::ExtValueStart,
                b';' => State::ExtName { started: false },
                _ => return None,
            },
            State::ExtValueStart => match b {
                b' ' | b'\t' => State::ExtValueStart,
                b'"' => State::ExtQuoted { escaped: false },
                _ if is_tchar(b) => State::ExtToken,
                _ => return None,
            },
            State::ExtToken => match b {
                _ if is_tchar(b) => State::ExtToken,
                b' ' | b'\t' => State::ExtValueEnd { space: true },
                b';' => State::ExtName { started: false },
                b'\r' => State::SizeLf,
                _ => return None,
            },
            State::ExtQuoted { escaped: true } => match b {
                b'\t' | b' '..=b'~' | 0x80.. => State::ExtQuoted { escaped: false },
                _ => return None,
            },
            State::ExtQuoted { escaped: false } => match b {
                b'"' => State::ExtValueEnd { space: false },
                b'\\' => State::ExtQuoted { escaped: true },
                b'\t' | b' '..=b'~' | 0x80.. => State::ExtQuoted { escaped: false },
                _ => return None,
            },
            State::ExtValueEnd { space } => match b {
                b' ' | b'\t' => State::ExtValueEnd { space: true },
                b';' => State::ExtName { started: false },
                b'\r' if !space => State::SizeLf,
                _ => return None,
            },
            State::SizeLf => match b {
                b'\n' if self.size == 0 => State::TrailerStart,
                b'\n' => State::Data(self.size),
                _ => return None,
            },
            State::DataCr => (b == b'\r').then_some(State::DataLf)?,
            State::DataLf => (b == b'\n').then_some(State::Size { size: 0, digits: 0 })?,
            State::TrailerStart => match b {
                b'\r' => State::FinalLf,
                _ if is_tchar(b) => State::TrailerName,
                _ => return None,
            },
            State::TrailerName => match b {
                _ if is_tchar(b) => State::TrailerName,
                b':' => State::TrailerValue,
                _ => return None,
            },
            State::TrailerValue => match b {
                b'\t' | b' '..=b'~' | 0x80.. => State::TrailerValue,
                b'\r' => State::TrailerLf,
                _ => return None,
            },
            State::TrailerLf => (b == b'\n').then_some(State::TrailerStart)?,
            State::FinalLf => (b == b'\n').then_some(State::Done)?,
            State::Data(_) | State::Done => return None,
        };
        Some(next)
    }
}

/// RFC 9110 5.6.2 token characters.
pub fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// The data of the complete chunked body at the start of `input` and the bytes it took.
pub fn decode(input: &[u8]) -> Result<Option<(Vec<u8>, usize)>, ChunkError> {
    let mut out = Vec::new();
    match ChunkedReader::default().feed(input, |d| out.extend_from_slice(d))? {
        Progress::Done(n) => Ok(Some((out, n))),
        Progress::More => Ok(None),
    }
}

#[cfg(test)]
mod tests;
