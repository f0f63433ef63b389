//! The chunked reader against valid bodies, every class of invalid framing, and splits.

use super::*;

fn ok(input: &[u8]) -> Vec<u8> {
    match decode(input) {
        Ok(Some((data, n))) => {
            assert_eq!(n, input.len(), "{:?}", String::from_utf8_lossy(input));
            data
        }
        other => panic!("{:?}: {other:?}", String::from_utf8_lossy(input)),
    }
}

fn bad_at(input: &[u8]) -> usize {
    match decode(input) {
        Err(ChunkError { at }) => at,
        other => panic!(
            "{:?} must be refused: {other:?}",
            String::from_utf8_lossy(input)
        ),
    }
}

#[test]
fn valid_bodies_decode_to_their_data() {
    assert_eq!(ok(b"3\r\nabc\r\n0\r\n\r\n"), b"abc");
    assert_eq!(ok(b"0\r\n\r\n"), b"");
    assert_eq!(ok(b"000\r\n\r\n"), b"");
    assert_eq!(ok(b"A\r\n0123456789\r\n0\r\n\r\n"), b"0123456789");
    assert_eq!(ok(b"2;name=v\r\nab\r\n0\r\n\r\n"), b"ab");
    assert_eq!(ok(b"2 ; name = \"q \\\" v\"\r\nab\r\n0\r\n\r\n"), b"ab");
    assert_eq!(ok(b"2;a;b=c;d=\"e\"\r\nab\r\n0;z\r\n\r\n"), b"ab");
    assert_eq!(ok(b"1\r\nx\r\n0\r\nT: 1\r\nU:\r\n\r\n"), b"x");
}

#[test]
fn bytes_after_the_body_are_the_next_message() {
    let input = b"1\r\nx\r\n0\r\n\r\nGET / HTTP/1.1\r\n";
    assert_eq!(decode(input).unwrap(), Some((b"x".to_vec(), 11)));
}

#[test]
fn chunk_size_must_be_hex_digits_without_sign_prefix_or_overflow() {
    assert_eq!(bad_at(b"g\r\n"), 0);
    assert_eq!(bad_at(b"-3\r\n"), 0);
    assert_eq!(bad_at(b"+3\r\n"), 0);
    assert_eq!(bad_at(b"0x3\r\n"), 1);
    assert_eq!(bad_at(b"\r\n"), 0);
    assert_eq!(bad_at(b" 3\r\n"), 0);
    assert_eq!(bad_at(b"10000000000000000\r\n"), 16);
}

#[test]
fn whitespace_after_the_size_only_before_an_extension() {
    assert_eq!(bad_at(b"3 \r\nabc\r\n0\r\n\r\n"), 2);
    assert_eq!(bad_at(b"3\t\r\n"), 2);
    assert_eq!(bad_at(b"3 x\r\n"), 2);
}

#[test]
fn extension_names_are_tokens_and_values_tokens_or_quoted_strings() {
    assert_eq!(bad_at(b"3;\r\n"), 2);
    assert_eq!(bad_at(b"3;=v\r\n"), 2);
    assert_eq!(bad_at(b"3;a=\r\n"), 4);
    assert_eq!(bad_at(b"3;a=b c\r\n"), 6);
    assert_eq!(bad_at(b"3;a=\"b\r\n"), 6);
    assert_eq!(bad_at(b"3;a=\"b\"c\r\n"), 7);
    assert_eq!(bad_at(b"3;a=\"b\" \r\n"), 8);
    assert_eq!(bad_at(b"3;a@b\r\n"), 3);
    assert_eq!(bad_at(b"3;a\0\r\n"), 3);
}

#[test]
fn every_line_ends_in_crlf() {
    assert_eq!(bad_at(b"3\nabc\r\n0\r\n\r\n"), 1);
    assert_eq!(bad_at(b"3\rabc\r\n"), 2);
    assert_eq!(bad_at(b"3;x\nabc\r\n"), 3);
    assert_eq!(bad_at(b"3\r\nabc\n0\r\n\r\n"), 6);
    assert_eq!(bad_at(b"3\r\nabcX\r\n"), 6);
    assert_eq!(bad_at(b"3\r\nabc\r\r\n"), 7);
    assert_eq!(bad_at(b"0\r\n\n"), 3);
    assert_eq!(bad_at(b"0\r\nT: 1\n\r\n"), 7);
}

#[test]
fn trailer_fields_are_validated_like_header_fields() {
    assert_eq!(bad_at(b"0\r\n T: 1\r\n\r\n"), 3);
    assert_eq!(bad_at(b"0\r\nT : 1\r\n\r\n"), 4);
    assert_eq!(bad_at(b"0\r\n: 1\r\n\r\n"), 3);
    assert_eq!(bad_at(b"0\r\nT: a\0b\r\n\r\n"), 7);
    assert_eq!(bad_at(b"0\r\nT: 1\r\n x\r\n\r\n"), 9);
}

#[test]
fn any_split_of_the_input_reads_the_same() {
    let input =
        b"5;ext=\"a;b\"\r\nhello\r\n1a\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-T: v\r\n\r\nNEXT";
    let whole = decode(input).unwrap().unwrap();
    for cut in 0..input.len() {
        let mut r = ChunkedReader::default();
        let mut out = Vec::new();
        let first = r.feed(&input[..cut], |d| out.extend_from_slice(d)).unwrap();
        let done = match first {
            Progress::Done(n) => n,
            Progress::More => match r.feed(&input[cut..], |d| out.extend_from_slice(d)).unwrap() {
                Progress::Done(n) => cut + n,
                Progress::More => panic!("body did not end"),
            },
        };
        assert_eq!((out, done), whole.clone(), "cut at {cut}");
    }
}

#[test]
fn extensions_and_trailers_are_bounded_like_a_header_block() {
    let mut input = b"0\r\nT: ".to_vec();
    input.extend(std::iter::repeat_n(b'a', MAX_HEADER_BYTES + 10));
    assert!(decode(&input).is_err());
}
