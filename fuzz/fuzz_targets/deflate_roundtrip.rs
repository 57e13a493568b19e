//! permessage-deflate end to end: a client and a server connection, both running deflate
//! with the same arbitrary `DeflateParams` (window bits 8..=15, context takeover or not
//! per direction) and arbitrary local policies (level, `min_compress_size`, `Memory`),
//! each in either delivery mode, exchange arbitrary messages (text as valid UTF-8 and
//! binary; whole, owned, or fragmented with Pings in between) in both directions, with
//! arbitrary read sizes. Invariant: every message arrives exactly as it was sent, and
//! neither side fails.
//!
//! Input layout (see also fuzz/README.md):
//!
//! ```text
//! params (4 bytes): client bits u8, server bits u8 (8 + b % 8 each; bit 7: no context
//!                   takeover for that direction), client policy u8, server policy u8
//!                   (policy: level = p % 10, bit 4: Memory::Retain, bits 5..7:
//!                   min_compress_size = 8 * (p >> 5))
//! flags u8          bit0 client streaming, bit1 server streaming
//! then messages until the input ends (at most 64), each:
//!   flags u8        bit0 text, bit1 server to client, bit2 owned send (Bytes),
//!                   bits 4..7: fragments (0/1: whole), bit3: a Ping after each fragment
//!   repeat u8       the data is repeated 1 + repeat % 4 times
//!   chunk u8        read sizes on the receiving side (a Chunker seed)
//!   len u16, bytes  the data (lossy UTF-8 for text)
//!   for each fragment but the last: cut u16 (its length is cut % (rest + 1))
//! ```
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsengine::extensions::deflate::{DeflateConfig, DeflateParams, DirectionParams, Memory};
use wsengine::{Config, Connection, Delivery, Event, MessageKind, Negotiated, Role};
use wsengine_fuzz::{Chunker, Reader, base_config, feed};
use wsengine_test_support::{Outcome, t0, take_transmit};

struct Message {
    kind: MessageKind,
    to_client: bool,
    owned: bool,
    pings: bool,
    chunk: u8,
    data: Vec<u8>,
    /// Fragment lengths (empty: sent whole).
    cuts: Vec<usize>,
}

struct Input {
    params: DeflateParams,
    client: (DeflateConfig, Delivery),
    server: (DeflateConfig, Delivery),
    messages: Vec<Message>,
}

fn direction(b: u8) -> DirectionParams {
    DirectionParams {
        max_window_bits: 8 + b % 8,
        no_context_takeover: b & 0x80 != 0,
    }
}

fn policy(p: u8) -> DeflateConfig {
    let mut c = DeflateConfig::default();
    c.level = p % 10;
    c.memory = if p & 0x10 != 0 {
        Memory::Retain
    } else {
        Memory::PerMessage
    };
    c.min_compress_size = 8 * usize::from(p >> 5);
    c
}

fn delivery(streaming: bool) -> Delivery {
    if streaming {
        Delivery::Streaming
    } else {
        Delivery::Whole
    }
}

impl<'a> arbitrary::Arbitrary<'a> for Input {
    fn arbitrary(u: &mut arbitrary::Unstructured<'a>) -> arbitrary::Result<Self> {
        let mut r = Reader(u);
        let params = DeflateParams {
            client: direction(r.u8()),
            server: direction(r.u8()),
        };
        let (cp, sp, flags) = (r.u8(), r.u8(), r.u8());
        let client = (policy(cp), delivery(flags & 1 != 0));
        let server = (policy(sp), delivery(flags & 2 != 0));
        let mut messages = Vec::new();
        while !r.is_empty() && messages.len() < 64 {
            let f = r.u8();
            let repeat = 1 + usize::from(r.u8() % 4);
            let chunk = r.u8();
            let raw = r.vec16();
            let kind = if f & 1 != 0 {
                MessageKind::Text
            } else {
                MessageKind::Binary
            };
            let one = match kind {
                MessageKind::Text => String::from_utf8_lossy(&raw).into_owned().into_bytes(),
                MessageKind::Binary => raw,
            };
            let data = one.repeat(repeat);
            let fragments = usize::from(f >> 4);
            let mut cuts = Vec::new();
            if fragments > 1 {
                let mut rest = data.len();
                for _ in 1..fragments {
                    let n = usize::from(r.u16()) % (rest + 1);
                    cuts.push(n);
                    rest -= n;
                }
                cuts.push(rest);
            }
            messages.push(Message {
                kind,
                to_client: f & 2 != 0,
                owned: f & 4 != 0,
                pings: f & 8 != 0,
                chunk,
                data,
                cuts,
            });
        }
        Ok(Self {
            params,
            client,
            server,
            messages,
        })
    }
}

impl core::fmt::Debug for Input {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        writeln!(
            f,
            "{:?}\nclient {:?}\nserver {:?}",
            self.params, self.client, self.server
        )?;
        for m in &self.messages {
            writeln!(
                f,
                "{:?} to_client={} owned={} pings={} chunk={} len={} cuts={:?}",
                m.kind,
                m.to_client,
                m.owned,
                m.pings,
                m.chunk,
                m.data.len(),
                m.cuts
            )?;
        }
        Ok(())
    }
}

fn endpoint(
    role: Role,
    params: DeflateParams,
    (policy, delivery): &(DeflateConfig, Delivery),
) -> Connection {
    let mut config: Config = base_config();
    config.deflate = Some(policy.clone());
    config.delivery = *delivery;
    Connection::upgraded(role, config, t0(), Negotiated::default().deflate(params))
        .expect("a connection")
}

/// Receives whatever `sender` has queued into `receiver`, returning the data messages
/// (streamed pieces joined) it delivered.
fn transfer(
    sender: &mut Connection,
    receiver: &mut Connection,
    chunk: u8,
    got: &mut Vec<(MessageKind, Vec<u8>)>,
    partial: &mut Option<(MessageKind, Vec<u8>)>,
) {
    let bytes = take_transmit(sender);
    let mut out = Outcome::default();
    feed(
        receiver,
        &mut out,
        &bytes,
        &mut Chunker::new(chunk),
        &mut wsengine_fuzz::no_op,
    );
    assert!(out.error.is_none(), "receiver failed: {:?}", out.error);
    for event in out.events {
        let (kind, data, last) = match event {
            Event::Text { data, last } => (MessageKind::Text, data.as_bytes().to_vec(), last),
            Event::Binary { data, last } => (MessageKind::Binary, data.to_vec(), last),
            Event::Ping(_) | Event::Pong(_) => continue,
            other => panic!("unexpected event {other:?}"),
        };
        let cur = partial.get_or_insert_with(|| (kind, Vec::new()));
        assert_eq!(cur.0, kind, "a message changed kind");
        cur.1.extend_from_slice(&data);
        if last {
            got.push(partial.take().expect("a message"));
        }
    }
}

fuzz_target!(|input: Input| {
    let mut client = endpoint(Role::Client, input.params, &input.client);
    let mut server = endpoint(Role::Server, input.params, &input.server);
    assert_eq!(client.deflate_params(), Some(input.params));
    // Messages each side has received, and the one it is receiving.
    let mut at_server = (Vec::new(), None);
    let mut at_client = (Vec::new(), None);
    let (mut to_server, mut to_client) = (Vec::new(), Vec::new());
    for m in &input.messages {
        let (sender, receiver, got, sent) = if m.to_client {
            (&mut server, &mut client, &mut at_client, &mut to_client)
        } else {
            (&mut client, &mut server, &mut at_server, &mut to_server)
        };
        if m.cuts.is_empty() {
            let text = || String::from_utf8(m.data.clone()).expect("valid UTF-8");
            match (m.kind, m.owned) {
                (MessageKind::Text, false) => sender.send_text(&text()),
                (MessageKind::Text, true) => sender.send(wsengine::Message::Text(text().into())),
                (MessageKind::Binary, false) => sender.send_binary(&m.data),
                (MessageKind::Binary, true) => {
                    sender.send(wsengine::Message::Binary(m.data.clone().into()))
                }
            }
            .expect("send");
            transfer(sender, receiver, m.chunk, &mut got.0, &mut got.1);
        } else {
            let mut rest = &m.data[..];
            for (i, &n) in m.cuts.iter().enumerate() {
                let last = i + 1 == m.cuts.len();
                sender
                    .send_fragment(m.kind, &rest[..n], last)
                    .expect("send_fragment");
                rest = &rest[n..];
                if m.pings {
                    sender
                        .send(wsengine::Message::Ping(bytes::Bytes::from_static(b"p")))
                        .expect("ping");
                }
                // Deliver every fragment as it is sent: the receiver decodes it on arrival.
                transfer(sender, receiver, m.chunk, &mut got.0, &mut got.1);
            }
        }
        sent.push((m.kind, m.data.clone()));
        // Pongs go back too.
        transfer(receiver, sender, 0, &mut Vec::new(), &mut None);
    }
    assert!(at_server.1.is_none() && at_client.1.is_none());
    assert!(at_server.0 == to_server, "client -> server messages differ");
    assert!(at_client.0 == to_client, "server -> client messages differ");
});
