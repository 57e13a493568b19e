//! A subscriber that stops reading is closed with 4003; the publisher and the other
//! subscribers go on.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::json;
use tokio::time::Instant;
use wsengine_tokio::Message;

use crate::support::*;

/// Most publications the test makes (16 KiB each: beyond the kernel's socket buffers).
const MAX_PUBLICATIONS: u64 = 2000;
/// How far behind the publisher the reading subscribers may fall: 3 publications (48 KiB),
/// within what a loopback socket holds before it is tuned up, so that a reader the
/// scheduler leaves waiting (shared cores) never has a backlog in the server (a reader
/// 1 MiB behind can have, and is then rightly closed with 4003 too).
const READER_WINDOW: u64 = 3;

/// The offset of a `publication` text, read from its head (the payload is not parsed).
fn offset_of(text: &str) -> u64 {
    let head = &text[..text.find("\"payload\"").expect("payload")];
    assert!(head.starts_with(r#"{"type":"publication""#), "{head}");
    let at = head.find("\"offset\":").expect("offset") + "\"offset\":".len();
    let digits: String = head[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().expect("offset digits")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_consumer_is_closed_4003_and_nobody_else_waits() {
    let hub = TestHub::start(config(
        "[auth]\nallow_anonymous = true\n[limits]\noutbound_cap = 65536\npublish_rate = 100000\n[namespaces.feed]\npresence = false\nhistory_size = 10\n",
    ))
    .await;
    let channel = "feed:big";
    let (mut stalled, _) = hub.connected().await;
    stalled
        .ok(json!({"type": "subscribe", "channel": channel}))
        .await;
    let target = Arc::new(AtomicU64::new(0));
    let mut readers = Vec::new();
    let mut progress = Vec::new();
    for _ in 0..2 {
        let (mut r, _) = hub.connected().await;
        r.ok(json!({"type": "subscribe", "channel": channel})).await;
        let seen = Arc::new(AtomicU64::new(0));
        progress.push(Arc::clone(&seen));
        let target = Arc::clone(&target);
        readers.push(tokio::spawn(async move {
            let mut expected = 1;
            loop {
                let text = match tokio::time::timeout(STEP, r.ws.next()).await {
                    Ok(Some(Ok(Message::Text(t)))) => t.as_str().to_owned(),
                    Ok(Some(Ok(Message::Close(frame)))) => {
                        panic!("reader closed at {expected}: {frame:?}")
                    }
                    Ok(Some(Ok(_))) => continue,
                    other => panic!("reader at {expected}: {other:?}"),
                };
                let offset = offset_of(&text);
                assert_eq!(offset, expected, "a reader lost or repeated a publication");
                seen.store(offset, Ordering::Release);
                let t = target.load(Ordering::Acquire);
                if t != 0 && offset >= t {
                    return (r, offset);
                }
                expected += 1;
            }
        }));
    }

    let (mut publisher, _) = hub.connected().await;
    let pad = "x".repeat(16 * 1024);
    let mut slowest_reply = Duration::ZERO;
    let mut stop_at = None;
    let mut last = 0;
    for i in 1..=MAX_PUBLICATIONS {
        // Keep the readers within their window (they read; only the stalled one stops).
        let wait_until = Instant::now() + STEP;
        while progress
            .iter()
            .map(|p| p.load(Ordering::Acquire))
            .min()
            .unwrap_or(0)
            + READER_WINDOW
            < i
        {
            assert!(Instant::now() < wait_until, "readers stuck");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        if stop_at.is_none() && hub.metric("wsengine_hub_closes_total{code=\"4003\"}") >= 1.0 {
            // The stalled one is out: a few more to show the others go on.
            stop_at = Some((i + 50).min(MAX_PUBLICATIONS));
        }
        let is_last = i == MAX_PUBLICATIONS || stop_at == Some(i);
        if is_last {
            target.store(i, Ordering::Release);
        }
        let payload = format!(r#"{{"n":{i},"pad":"{pad}"}}"#);
        let started = Instant::now();
        publisher
            .send_text(&format!(
                r#"{{"type":"publish","id":{i},"channel":"{channel}","payload":{payload}}}"#
            ))
            .await;
        let reply = publisher.recv().await;
        slowest_reply = slowest_reply.max(started.elapsed());
        assert_eq!(reply["id"], i, "{reply}");
        assert_eq!(reply["result"]["offset"], i, "{reply}");
        last = i;
        if is_last {
            break;
        }
    }
    assert!(stop_at.is_some(), "never closed the slow consumer");
    assert!(
        slowest_reply < Duration::from_secs(2),
        "the publisher waited {slowest_reply:?}"
    );
    for reader in readers {
        let (_r, got) = tokio::time::timeout(STEP * 3, reader)
            .await
            .expect("readers finish")
            .expect("reader");
        assert_eq!(got, last);
    }
    assert_eq!(hub.metric("wsengine_hub_closes_total{code=\"4003\"}"), 1.0);

    // The stalled one reads at last: some publications, in order, then the end (the
    // Close 4003 when it still got through, or the transport's end).
    let mut got = 0u64;
    let code = loop {
        match tokio::time::timeout(STEP, stalled.ws.next())
            .await
            .expect("stalled connection ends")
        {
            Some(Ok(Message::Text(t))) => {
                got += 1;
                assert_eq!(offset_of(t.as_str()), got);
            }
            Some(Ok(Message::Close(frame))) => break frame.map(|f| f.code.0),
            Some(Ok(_)) => {}
            Some(Err(_)) | None => break stalled.ws.closed().map(|(c, _)| c.0),
        }
    };
    assert!(got < last, "the stalled one got everything ({got})");
    assert!(
        matches!(code, Some(4003) | Some(1006) | None),
        "closed with {code:?}"
    );
    hub.stop().await;
}
