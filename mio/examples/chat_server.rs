//! A chat room on the mio event loop: one thread runs [`EventLoop`] with a [`Handler`]
//! of its own, and the main thread reads stdin and talks to the loop through a
//! [`Handle`].
//!
//! - `on_request` only lets in `GET /chat?name=NAME` (404 for another path, 400 for a
//!   missing or bad name, 409 for a name already in the room), and picks the `chat`
//!   subprotocol when the client offers it;
//! - `on_open` announces the newcomer, `on_event` relays each text message to everyone
//!   with the sender's name, `on_close` announces who left;
//! - each line typed on the server's stdin goes to every member as `[server] LINE`,
//!   sent from the main thread with [`Handle::send`]; the line `/quit` stops the loop
//!   gracefully ([`Handle::stop`]: every member gets a 1001 Close).
//!
//! ```text
//! cargo run -p wsengine-mio --example chat_server -- 127.0.0.1:9002
//! # in two other terminals (the core's blocking client, or the `wsengine` command):
//! cargo run --example chat_client -- 'ws://127.0.0.1:9002/chat?name=ann'
//! wsengine client 'ws://127.0.0.1:9002/chat?name=bob'
//! ```

use std::collections::HashMap;
use std::io::BufRead;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use wsengine::{Accept, Event, Message, Reject, Request, Response};
use wsengine_mio::{ConnId, Context, Decision, Disconnect, DriverConfig, EventLoop, Handler};

/// The members of the room, by connection. Shared with the main thread because a
/// [`Handle`](wsengine_mio::Handle) sends to one connection at a time: it needs the ids.
type Members = Arc<Mutex<HashMap<ConnId, String>>>;

struct Chat {
    members: Members,
    /// Names given in `on_request`, until `on_open` (the handshake may still fail).
    joining: HashMap<ConnId, String>,
}

impl Chat {
    fn members(&self) -> std::sync::MutexGuard<'_, HashMap<ConnId, String>> {
        // A panic elsewhere poisons the lock, not the data: keep going.
        self.members.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn name_taken(&self, name: &str) -> bool {
        self.joining.values().any(|n| n == name) || self.members().values().any(|n| n == name)
    }
}

impl Handler for Chat {
    fn on_request(&mut self, _ctx: &mut Context<'_>, id: ConnId, request: &Request) -> Decision {
        // `path()` is the request-target as sent, query included.
        let (path, query) = request
            .path()
            .split_once('?')
            .unwrap_or((request.path(), ""));
        if path != "/chat" {
            return Decision::Reject(Reject::new(404).body("try /chat?name=YOUR_NAME\n"));
        }
        let name = query
            .split('&')
            .find_map(|pair| pair.strip_prefix("name="))
            .unwrap_or("");
        let valid = (1..=20).contains(&name.len())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Decision::Reject(Reject::new(400).body("name: 1 to 20 of [A-Za-z0-9_]\n"));
        }
        if self.name_taken(name) {
            return Decision::Reject(Reject::new(409).body("that name is taken\n"));
        }
        self.joining.insert(id, name.to_owned());
        // A subprotocol is optional here: choose it only if the client offered it.
        let mut accept = Accept::new();
        if request.protocols().iter().any(|p| p == "chat") {
            accept = accept.protocol("chat");
        }
        Decision::Accept(accept)
    }

    fn on_open(&mut self, ctx: &mut Context<'_>, id: ConnId, _response: Option<&Response>) {
        let Some(name) = self.joining.remove(&id) else {
            return;
        };
        let others: Vec<String> = self.members().values().cloned().collect();
        let _ = ctx.send_text(id, &format!("welcome {name}; here: {others:?}"));
        ctx.broadcast(&Message::text(format!("* {name} joined")), Some(id));
        self.members().insert(id, name);
    }

    fn on_event(&mut self, ctx: &mut Context<'_>, id: ConnId, event: Event) {
        // Whole messages (the default `Delivery`): one Text event per message.
        if let Event::Text { data, .. } = event {
            let Some(name) = self.members().get(&id).cloned() else {
                return;
            };
            // Everyone, the sender included, sees the message as the room does. The
            // payload is shared between connections, not copied; a member that does
            // not read is cut off by the loop's slow-consumer policy.
            ctx.broadcast(&Message::text(format!("{name}: {}", data.as_str())), None);
        }
        // Binary messages are ignored; Pings and Closes are answered by the core.
    }

    fn on_close(&mut self, ctx: &mut Context<'_>, id: ConnId, why: Disconnect) {
        self.joining.remove(&id);
        // Called for every connection, refused ones included: only members leave.
        let Some(name) = self.members().remove(&id) else {
            return;
        };
        println!("{name} left: {why:?}");
        ctx.broadcast(&Message::text(format!("* {name} left")), None);
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9002".to_owned())
        .parse()?;
    let members = Members::default();
    let chat = Chat {
        members: Arc::clone(&members),
        joining: HashMap::new(),
    };
    let mut event_loop = EventLoop::new(DriverConfig::default(), chat)?;
    let local = event_loop.listen(addr)?;
    println!("chat room on ws://{local}/chat?name=NAME; type lines to announce, /quit to stop");

    // The loop owns the connections; other threads reach it through a Handle.
    let handle = event_loop.handle();
    let server = std::thread::spawn(move || event_loop.run());

    for line in std::io::stdin().lock().lines() {
        let line = line?;
        if line == "/quit" {
            break;
        }
        let ids: Vec<ConnId> = members
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .copied()
            .collect();
        for id in ids {
            // Queued and run by the loop; a member that left meanwhile is skipped there.
            handle.send(id, Message::text(format!("[server] {line}")))?;
        }
    }
    // `/quit` or the end of stdin: close every member with 1001 and let `run` return.
    handle.stop()?;
    server.join().map_err(|_| "the loop panicked")??;
    println!("stopped");
    Ok(())
}
