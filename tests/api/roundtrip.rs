//! Property: messages sent by one end arrive unchanged at the other, whatever the
//! chunking of the byte stream, in both directions and both delivery modes.

use bytes::Bytes;
use proptest::prelude::*;
use wsengine::Message;
use wsengine::{Connection, Delivery, Event, MessageKind};

use crate::support::*;

/// One thing the sender does.
#[derive(Debug, Clone)]
enum Op {
    Text(String),
    Binary(Vec<u8>),
    /// A message sent with `send_fragment`, cut at the given byte offsets (text may be
    /// cut inside a code point; repeated offsets give empty fragments), with a Ping
    /// between the first two fragments when `ping` is set.
    Fragmented {
        kind: MessageKind,
        data: Vec<u8>,
        cuts: Vec<usize>,
        ping: Option<Vec<u8>>,
    },
    Ping(Vec<u8>),
}

/// What the receiver should see, with streamed pieces joined.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Got {
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
}

fn arb_binary() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        8 => proptest::collection::vec(any::<u8>(), 0..200),
        3 => proptest::collection::vec(any::<u8>(), 120..1_200),
        // Past the 16-bit length and the default 64 KiB receive buffer, generated
        // cheaply from a seed.
        1 => (65_530usize..66_000, any::<u8>())
            .prop_map(|(n, seed)| (0..n).map(|i| i.to_le_bytes()[0].wrapping_mul(31) ^ seed).collect()),
    ]
}

fn arb_text() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => any::<String>(),
        2 => "[a-zé€𝄞 ]{100,600}",
    ]
}

fn arb_control_payload() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..=125)
}

fn arb_op() -> impl Strategy<Value = Op> {
    let fragmented = (
        prop_oneof![
            arb_text().prop_map(|s| (MessageKind::Text, s.into_bytes())),
            arb_binary().prop_map(|b| (MessageKind::Binary, b)),
        ],
        proptest::collection::vec(any::<prop::sample::Index>(), 0..6),
        proptest::option::of(arb_control_payload()),
    )
        .prop_map(|((kind, data), cuts, ping)| {
            let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(data.len() + 1)).collect();
            cuts.sort_unstable();
            Op::Fragmented {
                kind,
                data,
                cuts,
                ping,
            }
        });
    prop_oneof![
        3 => arb_text().prop_map(Op::Text),
        3 => arb_binary().prop_map(Op::Binary),
        3 => fragmented,
        1 => arb_control_payload().prop_map(Op::Ping),
    ]
}

/// Read sizes for the receiver, used in turn.
fn arb_reads() -> impl Strategy<Value = Vec<usize>> {
    proptest::collection::vec(prop_oneof![1usize..8, 1usize..300, 1usize..100_000], 1..8)
}

/// Performs `ops` on `sender`; returns what the receiver should get.
fn send_all(sender: &mut Connection, ops: &[Op]) -> Vec<Got> {
    let mut expected = Vec::new();
    for op in ops {
        match op {
            Op::Text(s) => {
                sender.send_text(s).unwrap();
                expected.push(Got::Text(s.clone()));
            }
            Op::Binary(b) => {
                sender.send_binary(b).unwrap();
                expected.push(Got::Binary(b.clone()));
            }
            Op::Ping(p) => {
                sender
                    .send(Message::Ping(Bytes::copy_from_slice(p)))
                    .unwrap();
                expected.push(Got::Ping(p.clone()));
            }
            Op::Fragmented {
                kind,
                data,
                cuts,
                ping,
            } => {
                let mut start = 0;
                for (i, end) in cuts.iter().copied().chain([data.len()]).enumerate() {
                    let last = end == data.len() && i == cuts.len();
                    sender
                        .send_fragment(*kind, &data[start..end], last)
                        .unwrap();
                    start = end;
                    if let (0, Some(p), false) = (i, ping, last) {
                        sender
                            .send(Message::Ping(Bytes::copy_from_slice(p)))
                            .unwrap();
                        expected.push(Got::Ping(p.clone()));
                    }
                }
                expected.push(match kind {
                    MessageKind::Text => Got::Text(String::from_utf8(data.clone()).unwrap()),
                    MessageKind::Binary => Got::Binary(data.clone()),
                });
            }
        }
    }
    expected
}

/// Joins streamed pieces into messages; checks that every text piece is valid UTF-8 and
/// that whole delivery never yields a piece.
fn collect(events: &[Event], delivery: Delivery) -> Result<Vec<Got>, TestCaseError> {
    let mut got = Vec::new();
    let mut text: Option<Vec<u8>> = None;
    let mut bin: Option<Vec<u8>> = None;
    for event in events {
        match event {
            Event::Text { data, last } => {
                prop_assert!(
                    std::str::from_utf8(data.as_bytes()).is_ok(),
                    "a text piece is not valid UTF-8 on its own: {:?}",
                    data.as_bytes()
                );
                prop_assert!(bin.is_none(), "text inside a binary message");
                prop_assert!(
                    *last || delivery == Delivery::Streaming,
                    "a piece in whole mode"
                );
                let buf = text.get_or_insert_with(Vec::new);
                buf.extend_from_slice(data.as_bytes());
                if *last {
                    let whole = text.take().unwrap_or_default();
                    got.push(Got::Text(String::from_utf8(whole).unwrap()));
                }
            }
            Event::Binary { data, last } => {
                prop_assert!(text.is_none(), "binary inside a text message");
                prop_assert!(
                    *last || delivery == Delivery::Streaming,
                    "a piece in whole mode"
                );
                bin.get_or_insert_with(Vec::new).extend_from_slice(data);
                if *last {
                    got.push(Got::Binary(bin.take().unwrap_or_default()));
                }
            }
            Event::Ping(p) => got.push(Got::Ping(p.to_vec())),
            other => prop_assert!(false, "unexpected event {:?}", other),
        }
    }
    prop_assert!(text.is_none() && bin.is_none(), "an unfinished message");
    Ok(got)
}

fn roundtrip(
    ops: &[Op],
    reads: &[usize],
    delivery: Delivery,
    client_sends: bool,
) -> Result<(), TestCaseError> {
    let mut c = config();
    c.delivery = delivery;
    let mut pair = open_pair(c);
    let (sender, receiver) = if client_sends {
        (&mut pair.client, &mut pair.server)
    } else {
        (&mut pair.server, &mut pair.client)
    };
    let expected = send_all(sender, ops);
    let bytes = take_transmit(sender);
    let out = feed_pieces(receiver, pieces(&bytes, reads));
    prop_assert_eq!(&out.error, &None);
    let got = collect(&out.events, delivery)?;
    prop_assert_eq!(got, expected.clone());

    // The Pings are answered in order, the latest one always (RFC 6455 §5.5.3: nothing
    // was written in between, so once 16 Pongs waited unwritten a newer Ping replaced
    // the one still to answer): the receiver answered the first 16 Pings at once and
    // the latest once those Pongs were out.
    let pongs = feed(sender, &take_transmit(receiver));
    prop_assert_eq!(&pongs.error, &None);
    let pings: Vec<Event> = expected
        .iter()
        .filter_map(|g| match g {
            Got::Ping(p) => Some(Event::Pong(p.clone().into())),
            _ => None,
        })
        .collect();
    let mut expected_pongs = pings.iter().take(16).cloned().collect::<Vec<_>>();
    if pings.len() > 16 {
        expected_pongs.extend(pings.last().cloned());
    }
    prop_assert_eq!(
        &pongs.events[..pongs.events.len().min(16)],
        &expected_pongs[..expected_pongs.len().min(16)]
    );
    let rest = feed(sender, &take_transmit(receiver));
    prop_assert_eq!(&rest.error, &None);
    let mut got_pongs = pongs.events;
    got_pongs.extend(rest.events);
    prop_assert_eq!(got_pongs, expected_pongs);
    Ok(())
}

/// Cuts `bytes` into reads of the sizes `reads`, in turn.
fn pieces<'a>(bytes: &'a [u8], reads: &[usize]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut rest = bytes;
    for &size in reads.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (piece, tail) = rest.split_at(size.clamp(1, rest.len()));
        out.push(piece);
        rest = tail;
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn client_to_server_whole(ops in proptest::collection::vec(arb_op(), 0..6), reads in arb_reads()) {
        roundtrip(&ops, &reads, Delivery::Whole, true)?;
    }

    #[test]
    fn client_to_server_streaming(ops in proptest::collection::vec(arb_op(), 0..6), reads in arb_reads()) {
        roundtrip(&ops, &reads, Delivery::Streaming, true)?;
    }

    #[test]
    fn server_to_client_whole(ops in proptest::collection::vec(arb_op(), 0..6), reads in arb_reads()) {
        roundtrip(&ops, &reads, Delivery::Whole, false)?;
    }

    #[test]
    fn server_to_client_streaming(ops in proptest::collection::vec(arb_op(), 0..6), reads in arb_reads()) {
        roundtrip(&ops, &reads, Delivery::Streaming, false)?;
    }
}

/// A fixed case that crosses every boundary at once: multibyte text cut inside code
/// points, one byte per read, streaming delivery.
#[test]
fn multibyte_text_fragments_one_byte_per_read_streaming() {
    let text = "é€𝄞".repeat(20);
    let data = text.as_bytes().to_vec();
    let cuts: Vec<usize> = (1..data.len()).step_by(3).collect();
    let ops = [Op::Fragmented {
        kind: MessageKind::Text,
        data,
        cuts,
        ping: Some(b"p".to_vec()),
    }];
    roundtrip(&ops, &[1], Delivery::Streaming, true).unwrap();
    roundtrip(&ops, &[1], Delivery::Streaming, false).unwrap();
    roundtrip(&ops, &[1], Delivery::Whole, true).unwrap();
}
