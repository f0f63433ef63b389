//! What the fuzz targets share: comparing sluice's parsed heads with `httparse`'s, and
//! cutting one input into socket reads.

use http::HeaderMap;

/// Header fields as `httparse` returns them, owned.
pub type Fields = Vec<(String, Vec<u8>)>;

/// `httparse`'s fields, owned.
pub fn fields(headers: &[httparse::Header<'_>]) -> Fields {
    headers
        .iter()
        .map(|h| (h.name.to_owned(), h.value.to_vec()))
        .collect()
}

/// Asserts that `map` holds exactly `fields`: same count, and for each name the same values
/// in the same order (a `HeaderMap` keeps order within a name only).
pub fn assert_same_fields(map: &HeaderMap, fields: &Fields) {
    assert_eq!(map.len(), fields.len(), "field count differs from httparse");
    for (name, _) in fields {
        let ours: Vec<&[u8]> = map.get_all(name.as_str()).iter().map(|v| v.as_bytes()).collect();
        let theirs: Vec<&[u8]> = fields
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
            .collect();
        assert_eq!(ours, theirs, "values of {name:?} differ from httparse");
    }
}

/// The values of the fields named `name` (any case).
pub fn values<'a>(fields: &'a Fields, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
    fields
        .iter()
        .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_slice())
}

/// The lengths of the strict prefixes of an `n`-byte message worth checking: all of them
/// for a short one, else the short ones, a stride through the middle and the last ones.
pub fn prefixes(n: usize) -> impl Iterator<Item = usize> {
    let all = n <= 512;
    (0..n).filter(move |&k| all || k < 64 || k + 64 >= n || k % 61 == 0)
}

/// Cuts `data` into reads whose lengths cycle through `lens`: a byte `l` below 128 is a read
/// of `l` bytes (at least 1), from 128 one of `(l - 127) * 64` bytes (64 B to 8 KiB).
pub fn reads<'a>(data: &'a [u8], lens: &[u8]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    let mut i = 0;
    while !rest.is_empty() {
        let len = match lens.get(i % lens.len().max(1)).copied() {
            None => rest.len(),
            Some(l @ 0..128) => usize::from(l).max(1),
            Some(l) => usize::from(l - 127) * 64,
        };
        let (read, tail) = rest.split_at(len.min(rest.len()));
        out.push(read);
        rest = tail;
        i += 1;
    }
    out
}
