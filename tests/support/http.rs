//! A tiny HTTP/1.1 client for the end-to-end tests: one GET per connection (`Connection:
//! close`), read to the end, and the answer taken apart as the tests check it. Every read is
//! bounded by 5 s. It only ever connects where a test tells it to (127.0.0.1 ports).

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// How long one read may wait for the answer.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// One answer: its status, its head (status line and header lines) and its body.
pub struct Answer {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl Answer {
    /// The value of header `name` as sluice and the echo backends write it (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| {
            l.strip_prefix(name)
                .and_then(|rest| rest.strip_prefix(": "))
        })
    }

    /// `(status, tag, body)`, the tag being `x-backend` (which backend answered) or else
    /// `location` (where a redirect points), empty when there is neither.
    pub fn tagged(self) -> (u16, String, String) {
        let tag = self
            .header("x-backend")
            .or_else(|| self.header("location"))
            .unwrap_or_default()
            .to_owned();
        (self.status, tag, self.body)
    }
}

/// Any stream a GET can be sent over (plain TCP or TLS).
pub trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

/// A GET of `path` with `Host: host` and the extra header lines `headers` (`Name: value`)
/// over `s`; `None` when no answer with a head came back.
pub fn exchange(
    s: &mut impl ReadWrite,
    host: &str,
    path: &str,
    headers: &[&str],
) -> Option<Answer> {
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for h in headers {
        req.push_str(h);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).ok()?;
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let out = String::from_utf8_lossy(&raw).into_owned();
    let status = out.get(9..12)?.parse().ok()?;
    let (head, body) = out.split_once("\r\n\r\n")?;
    Some(Answer {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    })
}

/// [`exchange`] over a plain connection to 127.0.0.1:`port`; `None` also when nothing
/// listens there.
pub fn fetch(port: u16, host: &str, path: &str, headers: &[&str]) -> Option<Answer> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(READ_TIMEOUT)).ok()?;
    exchange(&mut s, host, path, headers)
}

/// Status, `x-backend` (or `location`) header and body of a GET on 127.0.0.1:`port`.
pub fn request(
    port: u16,
    host: &str,
    path: &str,
    headers: &[&str],
) -> Option<(u16, String, String)> {
    fetch(port, host, path, headers).map(Answer::tagged)
}

/// The whole answer (head and body) to `request`, sent as is to 127.0.0.1:`port`.
pub fn raw(port: u16, request: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}
