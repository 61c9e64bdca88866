//! Property tests of the framing: whatever bytes a command prints, and however the stream is cut
//! into frames, the marker parser returns exactly the output and the exit status, and holds no
//! more than one marker's length of unresolved bytes. The ANSI stripper gives the same result
//! whatever the frame boundaries.

use podwrangler::session::{AnsiStripper, MarkerParser, Markers};
use proptest::prelude::*;

const NONCE: &str = "5eed0123abcd4567";

/// Output pieces biased towards marker fragments, so near-misses are common.
fn output_piece() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => proptest::collection::vec(any::<u8>(), 0..40),
        1 => Just(b"\n".to_vec()),
        1 => Just(b"\x1e__PWE_".to_vec()),
        1 => Just(format!("\x1e__PWE_{NONCE}_").into_bytes()),
        1 => Just(format!("__PWS_{NONCE}__\n").into_bytes()),
        1 => Just(b"__\n".to_vec()),
        1 => Just(NONCE.as_bytes().to_vec()),
        1 => Just(b"\x1e__PWE_ffffffffffffffff_0__\n".to_vec()),
        1 => "[0-9]{1,5}".prop_map(|s| s.into_bytes()),
        1 => Just(b"\r\n\x1b[0m".to_vec()),
    ]
}

fn output() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(output_piece(), 0..30).prop_map(|v| v.concat())
}

/// True when `out` contains a complete, valid end marker of NONCE (a command that prints its
/// own marker on purpose is out of scope: the nonce is random and not known to it).
fn contains_real_end_marker(out: &[u8]) -> bool {
    let prefix = format!("\x1e__PWE_{NONCE}_").into_bytes();
    (0..out.len()).any(|i| {
        out[i..].starts_with(&prefix) && {
            let rest = &out[i + prefix.len()..];
            let d = rest.iter().take_while(|b| b.is_ascii_digit()).count();
            (1..=4).contains(&d) && rest[d..].starts_with(b"__\n")
        }
    })
}

/// Feeds `stream` cut at `cuts` and returns (output, status, largest pending).
fn parse(stream: &[u8], cuts: &[usize]) -> (Vec<u8>, Option<i32>, usize) {
    let markers = Markers::with_nonce(NONCE);
    let mut parser = MarkerParser::new(&markers);
    let mut out = Vec::new();
    let mut status = None;
    let mut max_pending = 0;
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (stream.len() + 1)).collect();
    points.push(0);
    points.push(stream.len());
    points.sort_unstable();
    points.dedup();
    for w in points.windows(2) {
        if let Some(s) = parser.feed(&stream[w[0]..w[1]], &mut |b| out.extend_from_slice(b)) {
            assert!(status.is_none(), "the end marker was reported twice");
            status = Some(s);
        }
        max_pending = max_pending.max(parser.pending_len());
    }
    (out, status, max_pending)
}

fn framed(noise: &[u8], out: &[u8], status: i32, trailing: &[u8]) -> Vec<u8> {
    let markers = Markers::with_nonce(NONCE);
    let mut stream = noise.to_vec();
    stream.extend_from_slice(&markers.start_marker());
    stream.extend_from_slice(out);
    stream.extend_from_slice(&markers.end_marker(status));
    stream.extend_from_slice(trailing);
    stream
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn any_output_any_frames(
        noise in proptest::collection::vec(any::<u8>(), 0..200),
        out in output(),
        status in 0i32..=255,
        trailing in proptest::collection::vec(any::<u8>(), 0..50),
        cuts in proptest::collection::vec(any::<usize>(), 0..20),
    ) {
        let start = Markers::with_nonce(NONCE).start_marker();
        // Noise before the start marker may not contain the start marker itself (that would be
        // the shell printing it, i.e. the command had started).
        prop_assume!(!noise.windows(start.len()).any(|w| w == start.as_slice()));
        prop_assume!(!contains_real_end_marker(&out));
        let stream = framed(&noise, &out, status, &trailing);
        let (got, got_status, max_pending) = parse(&stream, &cuts);
        prop_assert_eq!(got, out);
        prop_assert_eq!(got_status, Some(status));
        let limit = MarkerParser::new(&Markers::with_nonce(NONCE)).max_marker_len();
        prop_assert!(max_pending <= limit, "pending {} > {}", max_pending, limit);
    }

    #[test]
    fn every_split_position(out in output(), status in 0i32..=255) {
        prop_assume!(!contains_real_end_marker(&out));
        let stream = framed(b"$ echo\r\n", &out, status, b"$ ");
        for cut in 0..=stream.len() {
            let (got, got_status, _) = parse(&stream, &[cut]);
            prop_assert_eq!(&got, &out, "split at {}", cut);
            prop_assert_eq!(got_status, Some(status));
        }
    }

    #[test]
    fn unfinished_streams_never_report_an_end(
        out in output(),
        cuts in proptest::collection::vec(any::<usize>(), 0..10),
    ) {
        prop_assume!(!contains_real_end_marker(&out));
        let mut stream = Markers::with_nonce(NONCE).start_marker();
        stream.extend_from_slice(&out);
        let (got, status, _) = parse(&stream, &cuts);
        prop_assert_eq!(status, None);
        // Whatever was handed out is a prefix of the output (the rest may still be a marker).
        prop_assert!(out.starts_with(&got));
        prop_assert!(out.len() - got.len() <= 40);
    }

    #[test]
    fn ansi_stripping_ignores_frame_boundaries(
        input in proptest::collection::vec(
            prop_oneof![
                3 => proptest::collection::vec(any::<u8>(), 0..20),
                1 => Just(b"\x1b[?2004h".to_vec()),
                1 => Just(b"\x1b]0;title\x07".to_vec()),
                1 => Just(b"\r\n".to_vec()),
            ],
            0..20,
        ).prop_map(|v| v.concat()),
        cuts in proptest::collection::vec(any::<usize>(), 0..10),
    ) {
        let mut whole = Vec::new();
        AnsiStripper::new().filter(&input, &mut whole);
        let mut pieces = Vec::new();
        let mut s = AnsiStripper::new();
        let mut points: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
        points.push(0);
        points.push(input.len());
        points.sort_unstable();
        points.dedup();
        for w in points.windows(2) {
            s.filter(&input[w[0]..w[1]], &mut pieces);
        }
        prop_assert_eq!(&pieces, &whole);
        prop_assert!(!whole.contains(&b'\r'));
        prop_assert!(!whole.contains(&0x1b));
    }
}
