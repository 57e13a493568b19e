//! The Redis engine: every channel's stream, history and presence in one Redis, so that
//! several hub nodes on it act as one (`[engine] kind = "redis"`, `--redis URL`;
//! `docs/HUB-PROTOCOL.md`, "Channels, history, recovery" and "Details the implementation
//! chose": the keys, the scripts and the failure behaviour).
//!
//! # The client crate
//!
//! [redis-rs](https://docs.rs/redis) (`redis` 1.x), not fred: it is the community's
//! maintained client (the redis-rs organisation, frequent releases), its
//! [`ConnectionManager`] is a multiplexed async connection that reconnects by itself with
//! exponential backoff, [`redis::Script`] runs Lua by `EVALSHA` and loads it again after a
//! `NOSCRIPT` (a restarted Redis; publishes use `EVAL`, see "Operations"), and its
//! `aio::PubSub` waits for each `SUBSCRIBE`'s confirmation, which the gap-free subscribe
//! below needs. Built with `tokio-comp`,
//! `connection-manager` and `script` only (no TLS, no cluster, no RESP3 cache), it adds a
//! handful of small crates to the tree; fred pulls more and builds longer on this 2-core
//! machine for features (cluster, sentinel, client tracking) the first slice does not use.
//!
//! # Keys
//!
//! With the prefix `P` ([`RedisConfig::prefix`], default `wsengine`) and a channel `C`
//! (its name is the hash tag, so a channel's keys would share a cluster slot):
//! - `P:meta:{C}`: a hash, `epoch` (16 hex digits, chosen by the node that made it) and
//!   `offset`; kept [`RedisConfig::position_ttl`] (24 h) after the channel's last
//!   activity, or the history's TTL when longer.
//! - `P:history:{C}`: a list, oldest first, of `EXPIRES_MS MESSAGE` (the expiry in Redis
//!   time, unix milliseconds, then the publication as published on the topic), trimmed to
//!   `history_size`, its expired head dropped, the key expiring with its newest entry.
//! - `P:presence:{C}` (a hash, client id to info JSON) and `P:presence-expiry:{C}` (a
//!   sorted set, client id scored by its expiry).
//! - `P:nodes` (a sorted set, node id scored by the expiry of its report) and
//!   `P:node-channels:{N}` (a hash, channel to the node's subscriber count): each node's
//!   counts for `/api/channels`, written every [`RedisConfig::presence_refresh`] and kept
//!   three times that.
//! - `P:topic:{C}`: the pub/sub channel of the channel's events (plain `PUBLISH`; sharded
//!   `SPUBLISH` would need the client's cluster feature: a later slice).
//!
//! Topic messages: `p` then the publication's JSON (`channel`, `offset`, `epoch`, `time`,
//! `payload` as the publisher wrote it, `info`), `j` or `l` then a client's info JSON
//! (join, leave).
//!
//! # Operations
//!
//! - Publish is one round trip, an `EVAL` (the script's text each time, so that a
//!   connection's pipelined publishes cannot be reordered by a `NOSCRIPT` retry): a Lua
//!   script that makes the channel's meta if missing
//!   (a new epoch; the old history deleted), increments the offset, appends to the
//!   history, sets the expiries and `PUBLISH`es the message, then returns the offset,
//!   epoch and time. Redis runs scripts one at a time, so every node agrees on offsets and
//!   the order of the topic is the order of offsets. Times are Redis's (`TIME`).
//! - Every read is a script too (it makes the meta when missing, so that two nodes
//!   reading a new channel see one epoch, and keeps the position alive for a day).
//! - Each node has one pub/sub connection. A channel's topic is subscribed when the
//!   channel gets its first local subscriber and unsubscribed when its last goes; each
//!   message is decoded once into an `Arc<Publication>` and handed to the channel's local
//!   `broadcast` sender, so a publication is encoded once per node
//!   ([`Publication::wire`]).
//! - Subscribe without gap: the topic's `SUBSCRIBE` is confirmed first, the position and
//!   the missed publications are read after it, and the [`Subscription`] drops what its
//!   recovery covered: every publication after the position arrives on the topic, each
//!   once.
//! - Presence entries expire [`RedisConfig::presence_ttl`] (30 s) after their last
//!   refresh; this engine re-adds the entries its node added every
//!   [`RedisConfig::presence_refresh`] (10 s) until they are removed (one script call per
//!   channel and 256 entries; a join goes out for an entry Redis had lost), so the
//!   clients of a node that dies leave presence by themselves. Expired entries are dropped (and a
//!   `leave` published for each) by the next presence call on their channel, and every
//!   refresh sweeps the channels that have subscribers on this node.
//!
//! # Failures
//!
//! Every Redis call is bounded by [`RedisConfig::op_timeout`]; a broker that is down or
//! late makes it [`EngineError::Unavailable`] (the client gets `unavailable`, `/health`
//! says `broker: "down"`). The connection manager reconnects on the next call; the
//! pub/sub connection has its own loop (backoff from 100 ms to
//! [`RedisConfig::reconnect_max`]) and is pinged every [`RedisConfig::pubsub_ping`]. When
//! it breaks, its subscribers may have missed publications: every local subscription
//! ends with [`RecvError::Interrupted`](super::RecvError::Interrupted) (the server
//! closes those clients with 1013 and they recover from history when they come back),
//! never a silent gap. [`RedisEngine::connect`] fails when Redis cannot be reached at
//! start (the server then refuses to start, as Centrifugo does).

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig, PubSubSink, PubSubStream};
use redis::{RedisError, Script};
use serde::Serialize;
use serde_json::value::RawValue;
use tokio::sync::{broadcast, mpsc, watch};

use super::{
    ChannelCounts, ChannelEvent, ClientInfo, Clock, Engine, EngineError, EngineFuture,
    HistoryOptions, HistoryResult, MAILBOX_CAPACITY, Mailbox, Payload, PresenceEntry, Publication,
    Recovery, StreamPosition, Subscription, SubscriptionLink, SystemClock, WireCache,
};

/// The Redis engine's settings.
#[derive(Clone, Debug)]
pub struct RedisConfig {
    /// The Redis URL (`redis://[user:password@]host:port[/db]`).
    pub url: String,
    /// What every key and topic starts with (several hubs, or tests, can share one Redis
    /// under different prefixes).
    pub prefix: String,
    /// The longest any Redis call may take before it is [`EngineError::Unavailable`].
    pub op_timeout: Duration,
    /// How long a presence entry lives without a refresh ("Details": a dead node's
    /// clients leave presence within 30 seconds).
    pub presence_ttl: Duration,
    /// How often this node re-adds its presence entries (well under `presence_ttl`).
    pub presence_refresh: Duration,
    /// How long a channel's offset and epoch are kept after its last activity ("Details":
    /// at least 24 hours).
    pub position_ttl: Duration,
    /// Events buffered per channel for its local receivers (as the memory engine's).
    pub channel_capacity: usize,
    /// The longest wait between two attempts to reconnect the pub/sub connection.
    pub reconnect_max: Duration,
    /// How often the pub/sub connection is pinged (a connection that stopped answering
    /// without closing is found within this plus `op_timeout`).
    pub pubsub_ping: Duration,
}

impl RedisConfig {
    /// The defaults for the Redis at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            prefix: "wsengine".to_owned(),
            op_timeout: Duration::from_secs(3),
            presence_ttl: Duration::from_secs(30),
            presence_refresh: Duration::from_secs(10),
            position_ttl: Duration::from_secs(24 * 60 * 60),
            channel_capacity: 1024,
            reconnect_max: Duration::from_secs(2),
            pubsub_ping: Duration::from_secs(5),
        }
    }
}

/// The publish script: see the module doc ("Operations") and `docs/HUB-PROTOCOL.md`.
/// KEYS: meta, history. ARGV: topic, candidate epoch, history size, history TTL (ms),
/// meta TTL (ms), the message's JSON after its opening brace. Returns offset, epoch, time.
const PUBLISH_LUA: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  epoch = ARGV[2]
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'offset', 0)
  redis.call('DEL', KEYS[2])
end
local offset = redis.call('HINCRBY', KEYS[1], 'offset', 1)
local meta_ttl = tonumber(ARGV[5])
if redis.call('PTTL', KEYS[1]) < meta_ttl then
  redis.call('PEXPIRE', KEYS[1], meta_ttl)
end
local message = 'p{"offset":' .. string.format('%d', offset) .. ',"epoch":"' .. epoch
  .. '","time":' .. string.format('%d', now) .. ',' .. ARGV[6]
local size = tonumber(ARGV[3])
local ttl = tonumber(ARGV[4])
if size > 0 and ttl > 0 then
  redis.call('RPUSH', KEYS[2], string.format('%d', now + ttl) .. ' ' .. message)
  redis.call('LTRIM', KEYS[2], -size, -1)
  while true do
    local head = redis.call('LINDEX', KEYS[2], 0)
    if not head or tonumber(string.match(head, '^(%d+) ')) > now then
      break
    end
    redis.call('LPOP', KEYS[2])
  end
  if redis.call('PTTL', KEYS[2]) < ttl then
    redis.call('PEXPIRE', KEYS[2], ttl)
  end
else
  redis.call('DEL', KEYS[2])
end
redis.call('PUBLISH', ARGV[1], message)
return {offset, epoch, now}
"#;

/// The read script (position, history, recovery). KEYS: meta, history. ARGV: candidate
/// epoch, meta TTL (ms), `n` (no since) or `s` and the since's epoch, the since's offset,
/// the limit (-1: all). Returns offset, epoch and the first retained offset as strings,
/// then the history entries asked for, oldest first.
const READ_LUA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  epoch = ARGV[1]
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'offset', 0)
  redis.call('DEL', KEYS[2])
end
local offset = tonumber(redis.call('HGET', KEYS[1], 'offset'))
local meta_ttl = tonumber(ARGV[2])
if redis.call('PTTL', KEYS[1]) < meta_ttl then
  redis.call('PEXPIRE', KEYS[1], meta_ttl)
end
while true do
  local head = redis.call('LINDEX', KEYS[2], 0)
  if not head or tonumber(string.match(head, '^(%d+) ')) > now then
    break
  end
  redis.call('LPOP', KEYS[2])
end
local len = redis.call('LLEN', KEYS[2])
local first = offset - len + 1
local result = {string.format('%d', offset), epoch, string.format('%d', first)}
local limit = tonumber(ARGV[5])
if limit == 0 or len == 0 then
  return result
end
local start
local stop = -1
if string.sub(ARGV[3], 1, 1) == 's' then
  if string.sub(ARGV[3], 2) ~= epoch then
    return result
  end
  start = tonumber(ARGV[4]) + 1 - first
  if start < 0 then
    start = 0
  end
  if start >= len then
    return result
  end
  if limit > 0 then
    stop = start + limit - 1
  end
elseif limit > 0 and limit < len then
  start = len - limit
else
  start = 0
end
local entries = redis.call('LRANGE', KEYS[2], start, stop)
for i = 1, #entries do
  result[#result + 1] = entries[i]
end
return result
";

/// What every presence script starts with: drops the entries of KEYS[1] (hash) and
/// KEYS[2] (expiries) that expired, publishing a leave for each on ARGV[1] (the topic).
const PRESENCE_SWEEP_LUA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)
for _, client in ipairs(expired) do
  local info = redis.call('HGET', KEYS[1], client)
  redis.call('HDEL', KEYS[1], client)
  redis.call('ZREM', KEYS[2], client)
  if info then
    redis.call('PUBLISH', ARGV[1], 'l' .. info)
  end
end
";

/// Adds or refreshes a presence entry. ARGV after the topic: client, info JSON, TTL (ms).
/// Publishes a join when the client was not there. Returns 1 when it was added.
const PRESENCE_ADD_LUA: &str = r"
local ttl = tonumber(ARGV[4])
local added = redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
redis.call('ZADD', KEYS[2], now + ttl, ARGV[2])
for i = 1, 2 do
  if redis.call('PTTL', KEYS[i]) < ttl then
    redis.call('PEXPIRE', KEYS[i], ttl)
  end
end
if added == 1 then
  redis.call('PUBLISH', ARGV[1], 'j' .. ARGV[3])
end
return added
";

/// Re-adds a node's entries (ARGV after the topic: TTL (ms), then client and info JSON
/// pairs), publishing a join for each that was not there.
const PRESENCE_REFRESH_LUA: &str = r"
local ttl = tonumber(ARGV[2])
for i = 3, #ARGV - 1, 2 do
  if redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) == 1 then
    redis.call('PUBLISH', ARGV[1], 'j' .. ARGV[i + 1])
  end
  redis.call('ZADD', KEYS[2], now + ttl, ARGV[i])
end
for i = 1, 2 do
  if redis.call('PTTL', KEYS[i]) < ttl then
    redis.call('PEXPIRE', KEYS[i], ttl)
  end
end
return (#ARGV - 2) / 2
";

/// Removes a presence entry (ARGV after the topic: client), publishing a leave when it
/// was there.
const PRESENCE_REMOVE_LUA: &str = r"
local info = redis.call('HGET', KEYS[1], ARGV[2])
if info then
  redis.call('HDEL', KEYS[1], ARGV[2])
  redis.call('ZREM', KEYS[2], ARGV[2])
  redis.call('PUBLISH', ARGV[1], 'l' .. info)
  return 1
end
return 0
";

/// The channel's presence entries (info JSON each).
const PRESENCE_LIST_LUA: &str = r"
return redis.call('HVALS', KEYS[1])
";

/// A node's report of its subscriber counts. KEYS: the nodes (a sorted set by expiry),
/// this node's counts (a hash). ARGV: the node id, the report's TTL (ms), then channel
/// and count pairs.
const REPORT_LUA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
redis.call('DEL', KEYS[2])
for i = 3, #ARGV - 1, 2 do
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
end
redis.call('PEXPIRE', KEYS[2], ttl)
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
redis.call('PEXPIRE', KEYS[1], ttl)
return 1
";

/// Every other live node's subscriber counts, as channel and count pairs. KEYS: the
/// nodes. ARGV: the key prefix, this node's id. (It reads the nodes' hashes by name: one
/// Redis, not a cluster.)
const COUNTS_LUA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local result = {}
for _, node in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if node ~= ARGV[2] then
    local counts = redis.call('HGETALL', ARGV[1] .. ':node-channels:{' .. node .. '}')
    for i = 1, #counts do
      result[#result + 1] = counts[i]
    end
  end
end
return result
";

/// The engine's scripts but publish's, loaded by their first `EVALSHA` (and again after a
/// restart of Redis: [`Script`] loads on `NOSCRIPT`).
struct Scripts {
    read: Script,
    presence_add: Script,
    presence_refresh: Script,
    presence_remove: Script,
    presence_list: Script,
    presence_sweep: Script,
    report: Script,
    counts: Script,
}

impl Scripts {
    fn new() -> Self {
        let presence = |body: &str| Script::new(&format!("{PRESENCE_SWEEP_LUA}{body}"));
        Self {
            read: Script::new(READ_LUA),
            presence_add: presence(PRESENCE_ADD_LUA),
            presence_refresh: presence(PRESENCE_REFRESH_LUA),
            presence_remove: presence(PRESENCE_REMOVE_LUA),
            presence_list: presence(PRESENCE_LIST_LUA),
            presence_sweep: presence("return #expired"),
            report: Script::new(REPORT_LUA),
            counts: Script::new(COUNTS_LUA),
        }
    }
}

/// Where a channel's local subscription stands with the broker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TopicState {
    /// `SUBSCRIBE` not confirmed yet.
    Pending,
    /// Confirmed: every message published from now on arrives.
    Subscribed,
    /// The pub/sub connection broke before or after the confirmation.
    Failed,
}

/// A channel with local subscribers.
#[derive(Debug)]
struct Topic {
    channel: Arc<str>,
    state: watch::Sender<TopicState>,
    /// Local subscriptions holding it; changed under the topics' lock.
    subscribers: AtomicUsize,
    interrupted: AtomicBool,
}

/// A topic and its local sender (dropped to end its receivers).
struct TopicEntry {
    topic: Arc<Topic>,
    sender: broadcast::Sender<ChannelEvent>,
}

/// What the pub/sub task is asked to do, in order.
enum Command {
    Subscribe(Arc<Topic>),
    Unsubscribe(Arc<str>),
    /// This node's mailbox topic ([`Engine::open_mailbox`]); subscribed again after
    /// every reconnect.
    Mailbox,
}

/// A subscription's hold on its topic ([`SubscriptionLink`]).
struct TopicLink {
    topic: Arc<Topic>,
    inner: Weak<Inner>,
}

impl std::fmt::Debug for TopicLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TopicLink")
            .field("channel", &self.topic.channel)
            .finish_non_exhaustive()
    }
}

impl SubscriptionLink for TopicLink {
    fn interrupted(&self) -> bool {
        self.topic.interrupted.load(Ordering::SeqCst)
    }
}

impl Drop for TopicLink {
    fn drop(&mut self) {
        if let Some(inner) = self.inner.upgrade() {
            inner.release(&self.topic);
        }
    }
}

/// The presence entries a node added (and refreshes): by channel, then client id.
type Present = HashMap<Arc<str>, HashMap<Arc<str>, ClientInfo>>;

/// The state the engine's handle, its tasks and its subscriptions share.
struct Inner {
    config: RedisConfig,
    client: redis::Client,
    conn: ConnectionManager,
    scripts: Scripts,
    topics: Mutex<HashMap<Arc<str>, TopicEntry>>,
    commands: mpsc::UnboundedSender<Command>,
    pubsub_up: AtomicBool,
    /// The presence entries this node added.
    present: Mutex<Present>,
    seed: RandomState,
    epochs_made: AtomicU64,
    /// This node's id in the subscriber counts (random).
    node: String,
    /// The mailbox topic and where its messages go, once opened.
    mailbox: Mutex<Option<(String, mpsc::Sender<Bytes>)>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every change under these locks is a single insert or remove: usable after a panic.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Redis's limits on TTLs and counts, well above any sensible setting: larger values
/// would be refused by `PEXPIRE` or lose precision in Lua's doubles.
const MAX_TTL_MS: u64 = 1 << 40;
const MAX_COUNT: u64 = 1 << 31;

/// Presence entries one refresh call re-adds at most (one script run each batch).
const REFRESH_BATCH: usize = 256;

fn unavailable(e: &RedisError) -> EngineError {
    EngineError::Unavailable(format!("redis: {e}"))
}

/// A Redis error: `internal` when Redis refused what the engine sent or answered what it
/// did not expect (a script error, a permission: a bug or a misconfiguration),
/// `unavailable` for everything else (down, unreachable, loading, busy, out of memory, a
/// failover).
fn redis_error(e: &RedisError) -> EngineError {
    use redis::{ErrorKind, ServerErrorKind};
    match e.kind() {
        ErrorKind::Parse
        | ErrorKind::UnexpectedReturnType
        | ErrorKind::Server(
            ServerErrorKind::ResponseError
            | ServerErrorKind::ExecAbort
            | ServerErrorKind::CrossSlot
            | ServerErrorKind::NoPerm,
        ) => EngineError::Internal(format!("redis: {e}")),
        _ => unavailable(e),
    }
}

fn bad_answer(what: &str) -> EngineError {
    EngineError::Internal(format!("redis: unexpected answer: {what}"))
}

/// The part of a topic message the node writes (the script adds offset, epoch and time
/// before it).
#[derive(Serialize)]
struct PublishBody<'a> {
    channel: &'a str,
    payload: &'a RawValue,
    #[serde(skip_serializing_if = "Option::is_none")]
    info: Option<&'a ClientInfo>,
}

/// A topic message or history entry, decoded.
fn decode(message: &[u8]) -> Option<ChannelEvent> {
    let (&kind, json) = message.split_first()?;
    match kind {
        b'p' => serde_json::from_slice::<Publication>(json)
            .ok()
            .map(|p| ChannelEvent::Publication(Arc::new(p))),
        b'j' => serde_json::from_slice(json).ok().map(ChannelEvent::Join),
        b'l' => serde_json::from_slice(json).ok().map(ChannelEvent::Leave),
        _ => None,
    }
}

/// The channel of a topic's name (`PREFIX:topic:{C}`), when it has this prefix.
fn channel_of<'t>(prefix: &str, topic: &'t str) -> Option<&'t str> {
    topic
        .strip_prefix(prefix)?
        .strip_prefix(":topic:{")?
        .strip_suffix('}')
}

/// A history entry (`EXPIRES MESSAGE`) as a publication.
fn decode_entry(entry: &str) -> Option<Arc<Publication>> {
    let (_, message) = entry.split_once(' ')?;
    match decode(message.as_bytes())? {
        ChannelEvent::Publication(p) => Some(p),
        _ => None,
    }
}

/// What the read script answered.
struct Read {
    position: StreamPosition,
    /// The offset of the oldest retained publication (`offset + 1` when none is).
    first: i64,
    publications: Vec<Arc<Publication>>,
}

impl Inner {
    fn key(&self, kind: &str, channel: &str) -> String {
        format!("{}:{kind}:{{{channel}}}", self.config.prefix)
    }

    fn topic_name(&self, channel: &str) -> String {
        self.key("topic", channel)
    }

    /// A new epoch: 16 hex digits from this node's random seed, a counter and the time.
    fn new_epoch(&self) -> String {
        let mut hasher = self.seed.build_hasher();
        self.epochs_made
            .fetch_add(1, Ordering::Relaxed)
            .hash(&mut hasher);
        SystemClock.now_ms().hash(&mut hasher);
        format!("{:016x}", hasher.finish())
    }

    fn meta_ttl_ms(&self, history_ttl: Duration) -> u64 {
        ms(self.config.position_ttl)
            .max(ms(history_ttl))
            .min(MAX_TTL_MS)
    }

    /// `future` bounded by the operation timeout, its errors mapped.
    async fn call<T>(
        &self,
        future: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, EngineError> {
        match tokio::time::timeout(self.config.op_timeout, future).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(redis_error(&e)),
            Err(_) => Err(EngineError::Unavailable(format!(
                "redis did not answer within {:?}",
                self.config.op_timeout
            ))),
        }
    }

    async fn publish(
        &self,
        channel: &str,
        payload: Payload,
        info: Option<ClientInfo>,
        opts: HistoryOptions,
    ) -> Result<Arc<Publication>, EngineError> {
        let body = serde_json::to_string(&PublishBody {
            channel,
            payload: &payload,
            info: info.as_ref(),
        })
        .map_err(|e| EngineError::Internal(e.to_string()))?;
        let body = body.strip_prefix('{').unwrap_or(&body);
        let size = u64::try_from(opts.history_size)
            .unwrap_or(u64::MAX)
            .min(MAX_COUNT);
        let ttl = ms(opts.history_ttl).min(MAX_TTL_MS);
        let mut conn = self.conn.clone();
        // `EVAL`, not `EVALSHA`: a connection's publishes are pipelined (the session has
        // several at the engine at once) and must reach Redis in their order. After a
        // `NOSCRIPT` (a fresh or restarted Redis) an `EVALSHA` is retried after the ones
        // sent behind it, which would reorder them; `EVAL` never fails that way, in the
        // same one round trip (Redis keeps the compiled script by its SHA1).
        let mut eval = redis::cmd("EVAL");
        eval.arg(PUBLISH_LUA)
            .arg(2)
            .arg(self.key("meta", channel))
            .arg(self.key("history", channel))
            .arg(self.topic_name(channel))
            .arg(self.new_epoch())
            .arg(size)
            .arg(ttl)
            .arg(self.meta_ttl_ms(opts.history_ttl))
            .arg(body);
        let (offset, epoch, time): (u64, String, u64) =
            self.call(eval.query_async(&mut conn)).await?;
        Ok(Arc::new(Publication {
            channel: channel.into(),
            offset,
            epoch: epoch.into(),
            payload,
            info,
            time,
            wire: WireCache::default(),
        }))
    }

    async fn read(
        &self,
        channel: &str,
        since: Option<&StreamPosition>,
        limit: Option<usize>,
    ) -> Result<Read, EngineError> {
        let limit = match limit {
            None => -1,
            Some(n) => i64::try_from(n).unwrap_or(i64::MAX).min(MAX_COUNT as i64),
        };
        let (since_arg, since_offset) = match since {
            Some(s) => (format!("s{}", s.epoch), s.offset),
            None => ("n".to_owned(), 0),
        };
        let mut conn = self.conn.clone();
        let mut invocation = self.scripts.read.prepare_invoke();
        invocation
            .key(self.key("meta", channel))
            .key(self.key("history", channel))
            .arg(self.new_epoch())
            .arg(ms(self.config.position_ttl).min(MAX_TTL_MS))
            .arg(since_arg)
            .arg(since_offset.min(1 << 53))
            .arg(limit);
        let answer: Vec<String> = self.call(invocation.invoke_async(&mut conn)).await?;
        let [offset, epoch, first, entries @ ..] = answer.as_slice() else {
            return Err(bad_answer("a short read"));
        };
        let offset = offset.parse().map_err(|_| bad_answer("offset"))?;
        let first = first.parse().map_err(|_| bad_answer("first offset"))?;
        let publications = entries
            .iter()
            .map(|e| decode_entry(e).ok_or_else(|| bad_answer("a history entry")))
            .collect::<Result<_, _>>()?;
        Ok(Read {
            position: StreamPosition {
                offset,
                epoch: epoch.as_str().into(),
            },
            first,
            publications,
        })
    }

    async fn recover(
        &self,
        channel: &str,
        since: &StreamPosition,
        recovery_max: usize,
    ) -> Result<Recovery, EngineError> {
        let read = self.read(channel, Some(since), Some(recovery_max)).await?;
        let position = read.position;
        let refused = |position| Recovery {
            recovered: false,
            publications: Vec::new(),
            position,
        };
        if since.epoch != position.epoch || since.offset > position.offset {
            return Ok(refused(position));
        }
        let missed = position.offset - since.offset;
        if missed == 0 {
            return Ok(Recovery {
                recovered: true,
                publications: Vec::new(),
                position,
            });
        }
        let first_needed = i64::try_from(since.offset.saturating_add(1)).unwrap_or(i64::MAX);
        if missed > u64::try_from(recovery_max).unwrap_or(u64::MAX)
            || read.first > first_needed
            || read.publications.len() as u64 != missed
        {
            return Ok(refused(position));
        }
        Ok(Recovery {
            recovered: true,
            publications: read.publications,
            position,
        })
    }

    /// Runs a presence script on `channel` (KEYS: the hash and the expiries; ARGV: the
    /// topic, then `args`).
    async fn presence_script<T: redis::FromRedisValue>(
        &self,
        script: &Script,
        channel: &str,
        args: &[&str],
    ) -> Result<T, EngineError> {
        let mut conn = self.conn.clone();
        let mut invocation = script.prepare_invoke();
        invocation
            .key(self.key("presence", channel))
            .key(self.key("presence-expiry", channel))
            .arg(self.topic_name(channel));
        for arg in args {
            invocation.arg(*arg);
        }
        self.call(invocation.invoke_async(&mut conn)).await
    }

    async fn presence_add(&self, channel: &str, info: &ClientInfo) -> Result<(), EngineError> {
        let json = serde_json::to_string(info).map_err(|e| EngineError::Internal(e.to_string()))?;
        let ttl = ms(self.config.presence_ttl)
            .clamp(1, MAX_TTL_MS)
            .to_string();
        let _: i64 = self
            .presence_script(
                &self.scripts.presence_add,
                channel,
                &[&info.client, &json, &ttl],
            )
            .await?;
        Ok(())
    }

    /// Re-adds this node's entries `infos` of `channel` in one call (a join for any that
    /// had expired). An entry removed meanwhile (its `presence_remove` may have reached
    /// Redis before this call) is removed again after it, so a refresh never brings back
    /// a client that left.
    async fn presence_refresh(
        &self,
        channel: &str,
        infos: &[ClientInfo],
    ) -> Result<(), EngineError> {
        let ttl = ms(self.config.presence_ttl)
            .clamp(1, MAX_TTL_MS)
            .to_string();
        let mut args = vec![ttl];
        for info in infos {
            let json =
                serde_json::to_string(info).map_err(|e| EngineError::Internal(e.to_string()))?;
            args.push(info.client.to_string());
            args.push(json);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let _: i64 = self
            .presence_script(&self.scripts.presence_refresh, channel, &args)
            .await?;
        let gone: Vec<Arc<str>> = {
            let present = lock(&self.present);
            let kept = present.get(channel);
            infos
                .iter()
                .filter(|i| !kept.is_some_and(|k| k.contains_key(&i.client)))
                .map(|i| i.client.clone())
                .collect()
        };
        for client in gone {
            let _: i64 = self
                .presence_script(&self.scripts.presence_remove, channel, &[&client])
                .await?;
        }
        Ok(())
    }

    /// This node's subscribers per channel (its topics' local subscriptions), live.
    fn local_counts(&self) -> Vec<(Arc<str>, u64)> {
        lock(&self.topics)
            .values()
            .map(|e| {
                let n = e.topic.subscribers.load(Ordering::SeqCst);
                (e.topic.channel.clone(), n as u64)
            })
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    /// Writes this node's counts for the others' `/api/channels`; they live three
    /// refresh periods (a node that dies drops out of the counts by itself).
    async fn report_counts(&self) -> Result<(), EngineError> {
        let ttl = ms(self.config.presence_refresh.saturating_mul(3)).clamp(1, MAX_TTL_MS);
        let mut conn = self.conn.clone();
        let mut invocation = self.scripts.report.prepare_invoke();
        invocation
            .key(format!("{}:nodes", self.config.prefix))
            .key(self.key("node-channels", &self.node))
            .arg(&self.node)
            .arg(ttl);
        for (channel, n) in self.local_counts() {
            invocation.arg(&*channel).arg(n);
        }
        let _: i64 = self.call(invocation.invoke_async(&mut conn)).await?;
        Ok(())
    }

    /// Every node's subscribers per channel, sorted by name: the others' last reports and
    /// this node's live counts.
    async fn cluster_counts(&self) -> Result<Vec<(Arc<str>, u64)>, EngineError> {
        let mut conn = self.conn.clone();
        let mut invocation = self.scripts.counts.prepare_invoke();
        invocation
            .key(format!("{}:nodes", self.config.prefix))
            .arg(&self.config.prefix)
            .arg(&self.node);
        let pairs: Vec<String> = self.call(invocation.invoke_async(&mut conn)).await?;
        let mut sums: std::collections::BTreeMap<Arc<str>, u64> = std::collections::BTreeMap::new();
        for pair in pairs.chunks_exact(2) {
            let n: u64 = pair[1]
                .parse()
                .map_err(|_| bad_answer("a subscriber count"))?;
            *sums.entry(pair[0].as_str().into()).or_default() += n;
        }
        for (channel, n) in self.local_counts() {
            *sums.entry(channel).or_default() += n;
        }
        Ok(sums.into_iter().filter(|(_, n)| *n > 0).collect())
    }

    /// Takes one local subscriber on `channel`'s topic (made, and its `SUBSCRIBE` asked
    /// for, when it is the first): its receiver, its link, and the topic's state.
    fn join(
        self: &Arc<Self>,
        channel: &str,
    ) -> (
        broadcast::Receiver<ChannelEvent>,
        TopicLink,
        watch::Receiver<TopicState>,
    ) {
        let mut topics = lock(&self.topics);
        let entry = match topics.get(channel) {
            Some(entry) => entry,
            None => {
                let name: Arc<str> = channel.into();
                let (sender, _) = broadcast::channel(self.config.channel_capacity.max(1));
                let topic = Arc::new(Topic {
                    channel: name.clone(),
                    state: watch::Sender::new(TopicState::Pending),
                    subscribers: AtomicUsize::new(0),
                    interrupted: AtomicBool::new(false),
                });
                // The pub/sub task ends only with the engine: then the topic stays
                // pending and the subscribe times out.
                let _ = self.commands.send(Command::Subscribe(topic.clone()));
                topics.entry(name).or_insert(TopicEntry { topic, sender })
            }
        };
        entry.topic.subscribers.fetch_add(1, Ordering::SeqCst);
        let receiver = entry.sender.subscribe();
        let state = entry.topic.state.subscribe();
        let link = TopicLink {
            topic: entry.topic.clone(),
            inner: Arc::downgrade(self),
        };
        (receiver, link, state)
    }

    /// One local subscriber of `topic` went; the last one unsubscribes.
    fn release(&self, topic: &Arc<Topic>) {
        let mut topics = lock(&self.topics);
        let left = topic.subscribers.fetch_sub(1, Ordering::SeqCst) - 1;
        if left == 0
            && topics
                .get(&topic.channel)
                .is_some_and(|e| Arc::ptr_eq(&e.topic, topic))
        {
            topics.remove(&topic.channel);
            let _ = self
                .commands
                .send(Command::Unsubscribe(topic.channel.clone()));
        }
    }

    /// Whether `topic` is the one its channel's local subscribers use now.
    fn is_current(&self, topic: &Arc<Topic>) -> bool {
        lock(&self.topics)
            .get(&topic.channel)
            .is_some_and(|e| Arc::ptr_eq(&e.topic, topic))
    }

    /// The pub/sub connection broke: every local subscription ends (they may have missed
    /// publications), pending subscribes fail.
    fn interrupt_all(&self) {
        self.pubsub_up.store(false, Ordering::SeqCst);
        let drained: Vec<TopicEntry> = lock(&self.topics).drain().map(|(_, e)| e).collect();
        for entry in drained {
            entry.topic.interrupted.store(true, Ordering::SeqCst);
            entry.topic.state.send_replace(TopicState::Failed);
            // Dropping `entry.sender` ends the receivers after what they have buffered.
        }
    }

    /// Hands a topic message to its channel's local receivers (a mailbox message to the
    /// mailbox).
    fn dispatch(&self, message: &redis::Msg) {
        if let Some((topic, sender)) = lock(&self.mailbox).as_ref()
            && message.get_channel_name() == topic
        {
            // A full mailbox drops it: the sender's request times out.
            let _ = sender.try_send(Bytes::copy_from_slice(message.get_payload_bytes()));
            return;
        }
        let Some(channel) = channel_of(&self.config.prefix, message.get_channel_name()) else {
            return;
        };
        let Some(event) = decode(message.get_payload_bytes()) else {
            eprintln!("hub: redis engine: an undecodable message on {channel}");
            return;
        };
        if let Some(entry) = lock(&self.topics).get(channel) {
            // An error only says that no receiver is left.
            let _ = entry.sender.send(event);
        }
    }
}

/// Whether `url` is a Redis URL this engine can use (`redis://`, `redis+unix://`,
/// `unix://`; no TLS in this build): what the configuration checks before start. The
/// error does not repeat the URL (it may hold a password).
pub fn check_url(url: &str) -> Result<(), String> {
    redis::Client::open(url)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// The engine ([`Engine`]) over one Redis.
pub struct RedisEngine {
    inner: Arc<Inner>,
    tasks: Vec<tokio::task::AbortHandle>,
}

impl std::fmt::Debug for RedisEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisEngine")
            .field("prefix", &self.inner.config.prefix)
            .finish_non_exhaustive()
    }
}

impl Drop for RedisEngine {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl RedisEngine {
    /// Connects to the Redis of `config.url` (the command connection and the pub/sub
    /// one) and starts the engine's tasks (pub/sub, presence refresh). Fails with
    /// [`EngineError::Unavailable`] when Redis cannot be reached within
    /// `config.op_timeout`, and [`EngineError::Internal`] for a URL it cannot use. Must
    /// be called inside a tokio runtime.
    pub async fn connect(config: RedisConfig) -> Result<Self, EngineError> {
        let client = redis::Client::open(config.url.as_str())
            .map_err(|e| EngineError::Internal(format!("the Redis URL: {e}")))?;
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.op_timeout))
            .set_response_timeout(Some(config.op_timeout))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(100))
            .set_max_delay(config.reconnect_max);
        let timeout = config.op_timeout;
        let bounded = |what: &str| EngineError::Unavailable(format!("redis: {what} timed out"));
        let conn = tokio::time::timeout(
            timeout,
            ConnectionManager::new_with_config(client.clone(), manager_config),
        )
        .await
        .map_err(|_| bounded("connecting"))?
        .map_err(|e| unavailable(&e))?;
        let pubsub = tokio::time::timeout(timeout, client.get_async_pubsub())
            .await
            .map_err(|_| bounded("connecting for pub/sub"))?
            .map_err(|e| unavailable(&e))?;
        let (commands, command_rx) = mpsc::unbounded_channel();
        let seed = RandomState::new();
        let inner = Arc::new(Inner {
            config,
            client,
            conn,
            scripts: Scripts::new(),
            topics: Mutex::new(HashMap::new()),
            commands,
            pubsub_up: AtomicBool::new(true),
            present: Mutex::new(HashMap::new()),
            node: format!("{:016x}", seed.hash_one(("node", SystemClock.now_ms()))),
            seed,
            epochs_made: AtomicU64::new(0),
            mailbox: Mutex::new(None),
        });
        let pubsub_task = tokio::spawn(run_pubsub(Arc::downgrade(&inner), pubsub, command_rx));
        let refresh_task = tokio::spawn(run_refresh(Arc::downgrade(&inner)));
        Ok(Self {
            inner,
            tasks: vec![pubsub_task.abort_handle(), refresh_task.abort_handle()],
        })
    }

    /// Whether the pub/sub connection is up now.
    pub fn pubsub_up(&self) -> bool {
        self.inner.pubsub_up.load(Ordering::SeqCst)
    }
}

/// The pub/sub task: runs the connection, subscribes and unsubscribes topics in the
/// order asked, hands messages to the local receivers, pings, and reconnects with backoff
/// after a failure (ending every local subscription first: see the module doc).
async fn run_pubsub(
    inner: Weak<Inner>,
    first: redis::aio::PubSub,
    mut commands: mpsc::UnboundedReceiver<Command>,
) {
    let mut connection = Some(first);
    let mut backoff = Duration::from_millis(100);
    loop {
        let Some(engine) = inner.upgrade() else {
            return;
        };
        let pubsub = match connection.take() {
            Some(pubsub) => pubsub,
            None => {
                let attempt = tokio::time::timeout(
                    engine.config.op_timeout,
                    engine.client.get_async_pubsub(),
                )
                .await;
                match attempt {
                    Ok(Ok(pubsub)) => pubsub,
                    _ => {
                        let wait = backoff;
                        backoff = (backoff * 2).min(engine.config.reconnect_max);
                        drop(engine);
                        tokio::time::sleep(wait).await;
                        continue;
                    }
                }
            }
        };
        if !engine.pubsub_up.load(Ordering::SeqCst) {
            eprintln!("hub: redis engine: the pub/sub connection is back");
        }
        backoff = Duration::from_millis(100);
        let (mut sink, mut stream) = pubsub.split();
        // The mailbox first: a reconnect resubscribes it (channels' topics are
        // subscribed again by their clients, who were interrupted).
        let mailbox = lock(&engine.mailbox)
            .as_ref()
            .map(|(topic, _)| topic.clone());
        if let Some(topic) = mailbox
            && !matches!(
                tokio::time::timeout(engine.config.op_timeout, sink.subscribe(topic)).await,
                Ok(Ok(()))
            )
        {
            drop(engine);
            tokio::time::sleep(backoff).await;
            continue;
        }
        engine.pubsub_up.store(true, Ordering::SeqCst);
        let ping_every = engine.config.pubsub_ping;
        drop(engine);
        let ended = serve_pubsub(&inner, &mut sink, &mut stream, &mut commands, ping_every).await;
        let Some(engine) = inner.upgrade() else {
            return;
        };
        engine.interrupt_all();
        if ended {
            return;
        }
        eprintln!("hub: redis engine: the pub/sub connection broke; reconnecting");
    }
}

/// Serves one pub/sub connection until it fails (false) or the engine is gone (true).
async fn serve_pubsub(
    inner: &Weak<Inner>,
    sink: &mut PubSubSink,
    stream: &mut PubSubStream,
    commands: &mut mpsc::UnboundedReceiver<Command>,
    ping_every: Duration,
) -> bool {
    let mut ping = tokio::time::interval(ping_every);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ping.tick().await;
    loop {
        tokio::select! {
            message = stream.next() => {
                let Some(message) = message else { return false };
                let Some(engine) = inner.upgrade() else { return true };
                engine.dispatch(&message);
            }
            command = commands.recv() => {
                let Some(command) = command else { return true };
                let Some(engine) = inner.upgrade() else { return true };
                let timeout = engine.config.op_timeout;
                match command {
                    Command::Subscribe(topic) => {
                        if !engine.is_current(&topic) {
                            continue;
                        }
                        let name = engine.topic_name(&topic.channel);
                        drop(engine);
                        match tokio::time::timeout(timeout, sink.subscribe(name)).await {
                            Ok(Ok(())) => {
                                topic.state.send_replace(TopicState::Subscribed);
                            }
                            _ => {
                                topic.state.send_replace(TopicState::Failed);
                                return false;
                            }
                        }
                    }
                    Command::Mailbox => {
                        let topic = lock(&engine.mailbox).as_ref().map(|(t, _)| t.clone());
                        drop(engine);
                        if let Some(topic) = topic
                            && !matches!(
                                tokio::time::timeout(timeout, sink.subscribe(topic)).await,
                                Ok(Ok(()))
                            )
                        {
                            return false;
                        }
                    }
                    Command::Unsubscribe(channel) => {
                        if lock(&engine.topics).contains_key(&channel) {
                            // Subscribed again meanwhile: keep the topic.
                            continue;
                        }
                        let name = engine.topic_name(&channel);
                        drop(engine);
                        if !matches!(
                            tokio::time::timeout(timeout, sink.unsubscribe(name)).await,
                            Ok(Ok(()))
                        ) {
                            return false;
                        }
                    }
                }
            }
            _ = ping.tick() => {
                let Some(engine) = inner.upgrade() else { return true };
                let timeout = engine.config.op_timeout;
                drop(engine);
                if !matches!(
                    tokio::time::timeout(timeout, sink.ping::<redis::Value>()).await,
                    Ok(Ok(_))
                ) {
                    return false;
                }
            }
        }
    }
}

/// The presence task: every `presence_refresh`, re-adds this node's entries (a join goes
/// out for any that had expired) and sweeps the expired entries of the channels with
/// local subscribers (a leave goes out for each).
async fn run_refresh(inner: Weak<Inner>) {
    let Some(every) = inner.upgrade().map(|e| e.config.presence_refresh) else {
        return;
    };
    let mut tick = tokio::time::interval(every.max(Duration::from_millis(10)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let Some(engine) = inner.upgrade() else {
            return;
        };
        // Redis down: the next tick tries again.
        let _ = engine.report_counts().await;
        let snapshot: Vec<(Arc<str>, Vec<ClientInfo>)> = lock(&engine.present)
            .iter()
            .map(|(channel, clients)| (channel.clone(), clients.values().cloned().collect()))
            .collect();
        let mut down = false;
        for (channel, infos) in snapshot {
            for batch in infos.chunks(REFRESH_BATCH) {
                if engine.presence_refresh(&channel, batch).await.is_err() {
                    // Redis is down: the next tick tries again.
                    down = true;
                    break;
                }
            }
            if down {
                break;
            }
        }
        let channels: Vec<Arc<str>> = lock(&engine.topics).keys().cloned().collect();
        for channel in channels.into_iter().filter(|_| !down) {
            let swept: Result<i64, _> = engine
                .presence_script(&engine.scripts.presence_sweep, &channel, &[])
                .await;
            if swept.is_err() {
                break;
            }
        }
    }
}

impl Engine for RedisEngine {
    fn name(&self) -> &'static str {
        "redis"
    }

    /// The topic `P:node:{NODE}` on the node's pub/sub connection.
    fn open_mailbox<'a>(&'a self, node: &'a str) -> EngineFuture<'a, Option<Mailbox>> {
        let (sender, receiver) = mpsc::channel(MAILBOX_CAPACITY);
        let topic = format!("{}:node:{{{node}}}", self.inner.config.prefix);
        *lock(&self.inner.mailbox) = Some((topic, sender));
        let _ = self.inner.commands.send(Command::Mailbox);
        Box::pin(std::future::ready(Ok(Some(receiver))))
    }

    /// `PUBLISH P:node:{NODE}`: delivered when a node's pub/sub connection has it.
    fn send_to_node<'a>(&'a self, node: &'a str, message: Bytes) -> EngineFuture<'a, bool> {
        Box::pin(async move {
            let topic = format!("{}:node:{{{node}}}", self.inner.config.prefix);
            let mut conn = self.inner.conn.clone();
            let receivers: u64 = self
                .inner
                .call(
                    redis::cmd("PUBLISH")
                        .arg(topic)
                        .arg(message.as_ref())
                        .query_async(&mut conn),
                )
                .await?;
            Ok(receivers > 0)
        })
    }

    fn publish<'a>(
        &'a self,
        channel: &'a str,
        payload: Payload,
        info: Option<ClientInfo>,
        opts: HistoryOptions,
    ) -> EngineFuture<'a, Arc<Publication>> {
        Box::pin(self.inner.publish(channel, payload, info, opts))
    }

    fn position<'a>(&'a self, channel: &'a str) -> EngineFuture<'a, StreamPosition> {
        Box::pin(async move { Ok(self.inner.read(channel, None, Some(0)).await?.position) })
    }

    fn history<'a>(
        &'a self,
        channel: &'a str,
        limit: Option<usize>,
        since: Option<StreamPosition>,
    ) -> EngineFuture<'a, HistoryResult> {
        Box::pin(async move {
            let read = self.inner.read(channel, since.as_ref(), limit).await?;
            Ok(HistoryResult {
                publications: read.publications,
                position: read.position,
            })
        })
    }

    fn recover<'a>(
        &'a self,
        channel: &'a str,
        since: StreamPosition,
        recovery_max: usize,
    ) -> EngineFuture<'a, Recovery> {
        Box::pin(async move { self.inner.recover(channel, &since, recovery_max).await })
    }

    fn subscribe<'a>(
        &'a self,
        channel: &'a str,
        since: Option<StreamPosition>,
        recovery_max: usize,
    ) -> EngineFuture<'a, Subscription> {
        Box::pin(async move {
            let inner = &self.inner;
            if !inner.pubsub_up.load(Ordering::SeqCst) {
                return Err(EngineError::Unavailable(
                    "the Redis pub/sub connection is down".to_owned(),
                ));
            }
            // The topic first (its SUBSCRIBE confirmed), then the position and history:
            // every publication after the position arrives on the topic.
            let (receiver, link, mut state) = inner.join(channel);
            let confirmed = tokio::time::timeout(
                inner.config.op_timeout,
                state.wait_for(|s| *s != TopicState::Pending),
            )
            .await
            .is_ok_and(|s| s.is_ok_and(|s| *s == TopicState::Subscribed));
            if !confirmed {
                return Err(EngineError::Unavailable(
                    "redis: the channel's topic could not be subscribed".to_owned(),
                ));
            }
            let recovery = match since {
                Some(since) => inner.recover(channel, &since, recovery_max).await?,
                None => Recovery {
                    recovered: false,
                    publications: Vec::new(),
                    position: inner.read(channel, None, Some(0)).await?.position,
                },
            };
            if link.interrupted() {
                return Err(EngineError::Unavailable(
                    "the Redis pub/sub connection broke".to_owned(),
                ));
            }
            Ok(Subscription::with_link(recovery, receiver, Box::new(link)))
        })
    }

    fn presence_add<'a>(&'a self, channel: &'a str, info: ClientInfo) -> EngineFuture<'a, ()> {
        Box::pin(async move {
            // Kept for the refresh even when Redis is down now: it is added when Redis
            // is back.
            lock(&self.inner.present)
                .entry(channel.into())
                .or_default()
                .insert(info.client.clone(), info.clone());
            self.inner.presence_add(channel, &info).await
        })
    }

    fn presence_remove<'a>(&'a self, channel: &'a str, client: &'a str) -> EngineFuture<'a, ()> {
        Box::pin(async move {
            {
                let mut present = lock(&self.inner.present);
                if let Some(clients) = present.get_mut(channel) {
                    clients.remove(client);
                    if clients.is_empty() {
                        present.remove(channel);
                    }
                }
            }
            let _: i64 = self
                .inner
                .presence_script(&self.inner.scripts.presence_remove, channel, &[client])
                .await?;
            Ok(())
        })
    }

    fn presence<'a>(&'a self, channel: &'a str) -> EngineFuture<'a, Vec<PresenceEntry>> {
        Box::pin(async move {
            let values: Vec<String> = self
                .inner
                .presence_script(&self.inner.scripts.presence_list, channel, &[])
                .await?;
            let mut entries = values
                .iter()
                .map(|v| {
                    serde_json::from_str::<ClientInfo>(v)
                        .map_err(|_| bad_answer("a presence entry"))
                })
                .collect::<Result<Vec<_>, _>>()?;
            entries.sort_by(|a, b| a.client.cmp(&b.client));
            Ok(entries)
        })
    }

    fn channels(&self) -> EngineFuture<'_, Option<ChannelCounts>> {
        Box::pin(async move { self.inner.cluster_counts().await.map(Some) })
    }

    fn health(&self) -> EngineFuture<'_, ()> {
        Box::pin(async move {
            let mut conn = self.inner.conn.clone();
            let _: String = self
                .inner
                .call(redis::cmd("PING").query_async(&mut conn))
                .await?;
            if !self.pubsub_up() {
                return Err(EngineError::Unavailable(
                    "the Redis pub/sub connection is down".to_owned(),
                ));
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_give_their_channel() {
        assert_eq!(
            channel_of("wsengine", "wsengine:topic:{chat:a}"),
            Some("chat:a")
        );
        assert_eq!(channel_of("wsengine", "other:topic:{chat:a}"), None);
        assert_eq!(channel_of("wsengine", "wsengine:meta:{chat:a}"), None);
        assert_eq!(channel_of("wsengine", "wsengine:topic:{chat:a"), None);
    }

    #[test]
    fn messages_decode_once_into_events() {
        let body = serde_json::to_string(&PublishBody {
            channel: "c",
            payload: &RawValue::from_string(r#"{"z":1, "a":1.50}"#.to_owned()).unwrap(),
            info: None,
        })
        .unwrap();
        // What the publish script writes before the node's part.
        let message = format!(
            r#"p{{"offset":7,"epoch":"e","time":1700000000000,{}"#,
            body.strip_prefix('{').unwrap()
        );
        let Some(ChannelEvent::Publication(p)) = decode(message.as_bytes()) else {
            panic!("{message}");
        };
        assert_eq!((p.offset, &*p.epoch, &*p.channel), (7, "e", "c"));
        assert_eq!(p.payload.get(), r#"{"z":1, "a":1.50}"#);
        assert_eq!(p.info, None);
        let entry = format!("1700000300000 {message}");
        assert_eq!(decode_entry(&entry).as_deref(), Some(&*p));
        let info = r#"{"client":"n-1","user":"u","name":"Ann"}"#;
        let Some(ChannelEvent::Join(join)) = decode(format!("j{info}").as_bytes()) else {
            panic!("join");
        };
        assert_eq!((&*join.client, join.name.as_deref()), ("n-1", Some("Ann")));
        assert!(matches!(
            decode(format!("l{info}").as_bytes()),
            Some(ChannelEvent::Leave(_))
        ));
        assert_eq!(decode(b"x{}"), None);
        assert_eq!(decode(b""), None);
        assert_eq!(decode_entry("no-space"), None);
    }
}
