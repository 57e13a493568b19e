//! The memory engine: every channel's stream, history and presence in this process, for a
//! single node (`[engine] kind = "memory"`, the default; `docs/HUB-PROTOCOL.md`,
//! "Channels, history, recovery").
//!
//! Channels are spread over shards (a `Mutex` each). Everything one channel does happens
//! under its shard's lock: assigning an offset, storing the publication in history and
//! handing it to the channel's `broadcast` sender, so the order of offsets is the order
//! every receiver sees; and a subscribe reads its recovery and registers its receiver in
//! the same critical section, so no publication falls between the two ([`Engine::subscribe`]).
//!
//! A restart is a new engine: every channel gets a new epoch ("Channels, history,
//! recovery": the epoch changes on a restart of the memory engine). A channel's offset and
//! epoch are kept while it has subscribers or presence, and for [`MemoryConfig::position_ttl`]
//! (24 hours by default) after its last activity ("Details": they outlive the history's
//! TTL); after that the channel is forgotten and starts again with a new epoch.

use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{broadcast, mpsc};

use super::{
    ChannelEvent, ClientInfo, Clock, Engine, EngineFuture, HistoryOptions, HistoryResult,
    MAILBOX_CAPACITY, Mailbox, Payload, PresenceEntry, Publication, Recovery, StreamPosition,
    Subscription, SystemClock, WireCache,
};

/// The memory engine's settings.
#[derive(Clone, Debug)]
pub struct MemoryConfig {
    /// Events buffered per channel for its receivers: a receiver this far behind loses
    /// events and its subscription reports [`super::RecvError::Lagged`] (the server closes
    /// that client with 4003).
    pub channel_capacity: usize,
    /// How long a channel's offset and epoch are kept after its last activity when it has
    /// neither subscribers nor presence ("Details": at least 24 hours).
    pub position_ttl: Duration,
    /// How often each shard drops expired history and forgotten channels.
    pub sweep_interval: Duration,
    /// The number of shards (locks) channels are spread over.
    pub shards: usize,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        Self {
            channel_capacity: 1024,
            position_ttl: Duration::from_secs(24 * 60 * 60),
            sweep_interval: Duration::from_secs(60),
            shards: 64,
        }
    }
}

/// The single-node engine: streams, history and presence in memory ([`Engine`]).
#[derive(Debug)]
pub struct MemoryEngine {
    shards: Box<[Mutex<Shard>]>,
    clock: Arc<dyn Clock>,
    config: MemoryConfig,
    /// Random per engine: spreads channels over shards and seeds the epochs, so that two
    /// engines (a restart) never share an epoch.
    seed: RandomState,
    epochs_made: AtomicU64,
    /// The mailboxes of the nodes on this engine (hubs in one process sharing it).
    mailboxes: Mutex<HashMap<String, mpsc::Sender<Bytes>>>,
}

#[derive(Debug, Default)]
struct Shard {
    channels: HashMap<Arc<str>, ChannelState>,
    next_sweep_ms: u64,
}

#[derive(Debug)]
struct ChannelState {
    name: Arc<str>,
    epoch: Arc<str>,
    offset: u64,
    /// The newest publications, contiguous up to `offset`, oldest first.
    history: VecDeque<Stored>,
    last_active_ms: u64,
    sender: Option<broadcast::Sender<ChannelEvent>>,
    presence: BTreeMap<Arc<str>, ClientInfo>,
}

#[derive(Debug)]
struct Stored {
    publication: Arc<Publication>,
    expires_ms: u64,
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl ChannelState {
    fn position(&self) -> StreamPosition {
        StreamPosition {
            offset: self.offset,
            epoch: self.epoch.clone(),
        }
    }

    fn expire_history(&mut self, now_ms: u64) {
        while self.history.front().is_some_and(|s| s.expires_ms <= now_ms) {
            self.history.pop_front();
        }
    }

    fn receivers(&self) -> usize {
        self.sender
            .as_ref()
            .map_or(0, broadcast::Sender::receiver_count)
    }

    /// Forgotten: idle past the position TTL with nobody subscribed or present.
    fn forgotten(&self, now_ms: u64, position_ttl_ms: u64) -> bool {
        now_ms.saturating_sub(self.last_active_ms) >= position_ttl_ms
            && self.receivers() == 0
            && self.presence.is_empty()
    }

    fn send(&self, event: ChannelEvent) {
        if let Some(sender) = &self.sender {
            // An error only says that no receiver is left.
            let _ = sender.send(event);
        }
    }

    fn recover(&self, since: &StreamPosition, recovery_max: usize) -> Recovery {
        let position = self.position();
        let refused = |position| Recovery {
            recovered: false,
            publications: Vec::new(),
            position,
        };
        if since.epoch != self.epoch || since.offset > self.offset {
            return refused(position);
        }
        let missed = self.offset - since.offset;
        if missed == 0 {
            return Recovery {
                recovered: true,
                publications: Vec::new(),
                position,
            };
        }
        if missed > u64::try_from(recovery_max).unwrap_or(u64::MAX) {
            return refused(position);
        }
        // History is contiguous up to `offset`: all of the missed ones are there when the
        // oldest retained one is at most `since.offset + 1`.
        match self.history.front() {
            Some(first) if first.publication.offset <= since.offset + 1 => {}
            _ => return refused(position),
        }
        let publications = self
            .after(since.offset)
            .map(|s| s.publication.clone())
            .collect();
        Recovery {
            recovered: true,
            publications,
            position,
        }
    }

    /// The retained publications after `offset`, oldest first.
    fn after(&self, offset: u64) -> impl Iterator<Item = &Stored> {
        let skip = self.history.front().map_or(0, |first| {
            offset
                .saturating_add(1)
                .saturating_sub(first.publication.offset)
        });
        self.history
            .iter()
            .skip(usize::try_from(skip).unwrap_or(usize::MAX))
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic under the lock leaves each channel's state whole (every change is a push,
    // a pop or a counter), and the mailboxes' map too (an insert or a remove), so a
    // poisoned lock is still usable.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Default for MemoryEngine {
    fn default() -> Self {
        Self::new(MemoryConfig::default())
    }
}

impl MemoryEngine {
    /// An engine on the system clock.
    pub fn new(config: MemoryConfig) -> Self {
        Self::with_clock(config, Arc::new(SystemClock))
    }

    /// An engine reading the time from `clock` (tests pass a [`super::ManualClock`]).
    pub fn with_clock(config: MemoryConfig, clock: Arc<dyn Clock>) -> Self {
        let shards = (0..config.shards.max(1))
            .map(|_| Mutex::new(Shard::default()))
            .collect();
        Self {
            shards,
            clock,
            config,
            seed: RandomState::new(),
            epochs_made: AtomicU64::new(0),
            mailboxes: Mutex::new(HashMap::new()),
        }
    }

    fn shard(&self, channel: &str) -> &Mutex<Shard> {
        let hash = self.seed.hash_one(channel);
        let len = self.shards.len() as u64;
        let index = usize::try_from(hash % len).unwrap_or(0);
        &self.shards[index]
    }

    /// A new epoch: 16 hex digits, from this engine's random seed, a counter and the time.
    fn new_epoch(&self, now_ms: u64) -> Arc<str> {
        let mut hasher = self.seed.build_hasher();
        self.epochs_made
            .fetch_add(1, Ordering::Relaxed)
            .hash(&mut hasher);
        now_ms.hash(&mut hasher);
        format!("{:016x}", hasher.finish()).into()
    }

    /// Drops expired history, the senders of channels nobody receives any more, and the
    /// channels forgotten (idle past [`MemoryConfig::position_ttl`] with no subscriber and
    /// no presence), in every shard. Each shard also does this by itself, on its first call
    /// after [`MemoryConfig::sweep_interval`]; the server may call it from a timer so that
    /// shards that see no calls give their memory back too.
    pub fn sweep(&self) {
        let now_ms = self.clock.now_ms();
        for shard in &self.shards {
            self.sweep_shard(&mut lock(shard), now_ms);
        }
    }

    fn sweep_shard(&self, shard: &mut Shard, now_ms: u64) {
        let position_ttl_ms = ms(self.config.position_ttl);
        shard.channels.retain(|_, state| {
            state.expire_history(now_ms);
            if state.receivers() == 0 {
                state.sender = None;
            }
            !state.forgotten(now_ms, position_ttl_ms)
        });
        shard.next_sweep_ms = now_ms.saturating_add(ms(self.config.sweep_interval));
    }

    /// Runs `f` on `channel`'s state (made when missing, renewed when forgotten, its
    /// expired history dropped), under its shard's lock, and marks the channel active.
    fn with_channel<T>(&self, channel: &str, f: impl FnOnce(&mut ChannelState, u64) -> T) -> T {
        let now_ms = self.clock.now_ms();
        let position_ttl_ms = ms(self.config.position_ttl);
        let mut shard = lock(self.shard(channel));
        if now_ms >= shard.next_sweep_ms {
            self.sweep_shard(&mut shard, now_ms);
        }
        if shard
            .channels
            .get(channel)
            .is_some_and(|s| s.forgotten(now_ms, position_ttl_ms))
        {
            shard.channels.remove(channel);
        }
        let state = match shard.channels.get_mut(channel) {
            Some(state) => state,
            None => {
                let name: Arc<str> = channel.into();
                let state = ChannelState {
                    name: name.clone(),
                    epoch: self.new_epoch(now_ms),
                    offset: 0,
                    history: VecDeque::new(),
                    last_active_ms: now_ms,
                    sender: None,
                    presence: BTreeMap::new(),
                };
                shard.channels.entry(name).or_insert(state)
            }
        };
        state.expire_history(now_ms);
        state.last_active_ms = now_ms;
        f(state, now_ms)
    }

    fn publish_now(
        &self,
        channel: &str,
        payload: Payload,
        info: Option<ClientInfo>,
        opts: HistoryOptions,
    ) -> Arc<Publication> {
        self.with_channel(channel, |state, now_ms| {
            state.offset += 1;
            let publication = Arc::new(Publication {
                channel: state.name.clone(),
                offset: state.offset,
                epoch: state.epoch.clone(),
                payload,
                info,
                time: now_ms,
                wire: WireCache::default(),
            });
            if opts.history_size == 0 || opts.history_ttl.is_zero() {
                state.history.clear();
            } else {
                state.history.push_back(Stored {
                    publication: publication.clone(),
                    expires_ms: now_ms.saturating_add(ms(opts.history_ttl)),
                });
                while state.history.len() > opts.history_size {
                    state.history.pop_front();
                }
            }
            state.send(ChannelEvent::Publication(publication.clone()));
            publication
        })
    }

    fn history_now(
        &self,
        channel: &str,
        limit: Option<usize>,
        since: Option<StreamPosition>,
    ) -> HistoryResult {
        self.with_channel(channel, |state, _| {
            let position = state.position();
            let limit = limit.unwrap_or(usize::MAX);
            let publications = match since {
                Some(since) if since.epoch != state.epoch => Vec::new(),
                Some(since) => state
                    .after(since.offset)
                    .take(limit)
                    .map(|s| s.publication.clone())
                    .collect(),
                None => {
                    let skip = state.history.len().saturating_sub(limit);
                    state
                        .history
                        .iter()
                        .skip(skip)
                        .map(|s| s.publication.clone())
                        .collect()
                }
            };
            HistoryResult {
                publications,
                position,
            }
        })
    }

    fn subscribe_now(
        &self,
        channel: &str,
        since: Option<StreamPosition>,
        recovery_max: usize,
    ) -> Subscription {
        let capacity = self.config.channel_capacity.max(1);
        self.with_channel(channel, |state, _| {
            let recovery = match since {
                Some(since) => state.recover(&since, recovery_max),
                None => Recovery {
                    recovered: false,
                    publications: Vec::new(),
                    position: state.position(),
                },
            };
            let receiver = match &state.sender {
                Some(sender) => sender.subscribe(),
                None => {
                    let (sender, receiver) = broadcast::channel(capacity);
                    state.sender = Some(sender);
                    receiver
                }
            };
            Subscription::new(recovery, receiver)
        })
    }

    fn presence_add_now(&self, channel: &str, info: ClientInfo) {
        self.with_channel(channel, |state, _| {
            if state
                .presence
                .insert(info.client.clone(), info.clone())
                .is_none()
            {
                state.send(ChannelEvent::Join(info));
            }
        });
    }

    fn presence_remove_now(&self, channel: &str, client: &str) {
        self.with_channel(channel, |state, _| {
            if let Some(info) = state.presence.remove(client) {
                state.send(ChannelEvent::Leave(info));
            }
        });
    }
}

fn ready<'a, T: Send + 'a>(value: T) -> EngineFuture<'a, T> {
    Box::pin(std::future::ready(Ok(value)))
}

impl Engine for MemoryEngine {
    fn name(&self) -> &'static str {
        "memory"
    }

    fn open_mailbox<'a>(&'a self, node: &'a str) -> EngineFuture<'a, Option<Mailbox>> {
        let (sender, receiver) = mpsc::channel(MAILBOX_CAPACITY);
        lock(&self.mailboxes).insert(node.to_owned(), sender);
        Box::pin(std::future::ready(Ok(Some(receiver))))
    }

    fn send_to_node<'a>(&'a self, node: &'a str, message: Bytes) -> EngineFuture<'a, bool> {
        let mut mailboxes = lock(&self.mailboxes);
        let delivered = match mailboxes.get(node) {
            Some(sender) if sender.is_closed() => {
                mailboxes.remove(node);
                false
            }
            // A full mailbox drops it: the sender's request times out.
            Some(sender) => {
                let _ = sender.try_send(message);
                true
            }
            None => false,
        };
        Box::pin(std::future::ready(Ok(delivered)))
    }

    fn publish<'a>(
        &'a self,
        channel: &'a str,
        payload: Payload,
        info: Option<ClientInfo>,
        opts: HistoryOptions,
    ) -> EngineFuture<'a, Arc<Publication>> {
        ready(self.publish_now(channel, payload, info, opts))
    }

    fn position<'a>(&'a self, channel: &'a str) -> EngineFuture<'a, StreamPosition> {
        ready(self.with_channel(channel, |state, _| state.position()))
    }

    fn history<'a>(
        &'a self,
        channel: &'a str,
        limit: Option<usize>,
        since: Option<StreamPosition>,
    ) -> EngineFuture<'a, HistoryResult> {
        ready(self.history_now(channel, limit, since))
    }

    fn recover<'a>(
        &'a self,
        channel: &'a str,
        since: StreamPosition,
        recovery_max: usize,
    ) -> EngineFuture<'a, Recovery> {
        ready(self.with_channel(channel, |state, _| state.recover(&since, recovery_max)))
    }

    fn subscribe<'a>(
        &'a self,
        channel: &'a str,
        since: Option<StreamPosition>,
        recovery_max: usize,
    ) -> EngineFuture<'a, Subscription> {
        ready(self.subscribe_now(channel, since, recovery_max))
    }

    fn presence_add<'a>(&'a self, channel: &'a str, info: ClientInfo) -> EngineFuture<'a, ()> {
        self.presence_add_now(channel, info);
        ready(())
    }

    fn presence_remove<'a>(&'a self, channel: &'a str, client: &'a str) -> EngineFuture<'a, ()> {
        self.presence_remove_now(channel, client);
        ready(())
    }

    fn presence<'a>(&'a self, channel: &'a str) -> EngineFuture<'a, Vec<PresenceEntry>> {
        ready(self.with_channel(channel, |state, _| {
            state.presence.values().cloned().collect()
        }))
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    use super::super::{ManualClock, RecvError};
    use super::*;

    /// The memory engine's futures are ready at once: poll once.
    fn now<T>(future: impl Future<Output = T>) -> T {
        let mut cx = Context::from_waker(Waker::noop());
        match pin!(future).poll(&mut cx) {
            Poll::Ready(value) => value,
            Poll::Pending => panic!("a memory engine future was not ready"),
        }
    }

    const T0: u64 = 1_700_000_000_000;

    fn engine() -> (MemoryEngine, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new(T0));
        (
            MemoryEngine::with_clock(MemoryConfig::default(), clock.clone()),
            clock,
        )
    }

    fn info(client: &str, user: &str) -> ClientInfo {
        ClientInfo {
            client: client.into(),
            user: user.into(),
            name: None,
        }
    }

    fn opts(size: usize, ttl_secs: u64) -> HistoryOptions {
        HistoryOptions {
            history_size: size,
            history_ttl: Duration::from_secs(ttl_secs),
        }
    }

    fn json(text: &str) -> Payload {
        serde_json::value::RawValue::from_string(text.to_owned())
            .unwrap()
            .into()
    }

    fn publish(e: &MemoryEngine, channel: &str, n: u64, o: HistoryOptions) -> Arc<Publication> {
        now(e.publish(channel, json(&format!(r#"{{"n":{n}}}"#)), None, o)).unwrap()
    }

    fn offsets(publications: &[Arc<Publication>]) -> Vec<u64> {
        publications.iter().map(|p| p.offset).collect()
    }

    fn at(offset: u64, epoch: &Arc<str>) -> StreamPosition {
        StreamPosition {
            offset,
            epoch: epoch.clone(),
        }
    }

    #[test]
    fn offsets_start_at_one_and_the_epoch_is_stable() {
        let (e, _) = engine();
        let empty = now(e.position("chat:a")).unwrap();
        assert_eq!(empty.offset, 0);
        let first = publish(&e, "chat:a", 1, HistoryOptions::default());
        assert_eq!(first.offset, 1);
        assert_eq!(first.epoch, empty.epoch);
        assert_eq!(&*first.channel, "chat:a");
        let second = publish(&e, "chat:a", 2, HistoryOptions::default());
        assert_eq!((second.offset, &second.epoch), (2, &empty.epoch));
        assert_eq!(now(e.position("chat:a")).unwrap(), at(2, &empty.epoch));
        // Channels are separate streams.
        assert_eq!(
            publish(&e, "chat:b", 1, HistoryOptions::default()).offset,
            1
        );
        assert_eq!(e.name(), "memory");
    }

    #[test]
    fn a_new_engine_has_new_epochs() {
        let (a, _) = engine();
        let (b, _) = engine();
        let ea = now(a.position("c")).unwrap().epoch;
        let eb = now(b.position("c")).unwrap().epoch;
        assert_ne!(ea, eb);
        assert_ne!(ea, now(a.position("d")).unwrap().epoch);
        assert_eq!(ea.len(), 16);
    }

    #[test]
    fn history_is_kept_by_count() {
        let (e, _) = engine();
        for n in 1..=10 {
            publish(&e, "c", n, opts(3, 300));
        }
        let h = now(e.history("c", None, None)).unwrap();
        assert_eq!(offsets(&h.publications), [8, 9, 10]);
        assert_eq!(h.position.offset, 10);
        assert_eq!(h.publications[0].payload.get(), r#"{"n":8}"#);
    }

    #[test]
    fn history_is_kept_by_age() {
        let (e, clock) = engine();
        publish(&e, "c", 1, opts(100, 10));
        clock.advance(Duration::from_secs(6));
        publish(&e, "c", 2, opts(100, 10));
        clock.advance(Duration::from_secs(5)); // the first is 11 s old, the second 5 s
        let h = now(e.history("c", None, None)).unwrap();
        assert_eq!(offsets(&h.publications), [2]);
        clock.advance(Duration::from_secs(5));
        let h = now(e.history("c", None, None)).unwrap();
        assert!(h.publications.is_empty());
        assert_eq!(h.position.offset, 2);
    }

    #[test]
    fn history_size_zero_keeps_none_but_counts() {
        let (e, _) = engine();
        publish(&e, "c", 1, opts(0, 300));
        publish(&e, "c", 2, opts(0, 300));
        let h = now(e.history("c", None, None)).unwrap();
        assert!(h.publications.is_empty());
        assert_eq!(h.position.offset, 2);
    }

    #[test]
    fn history_limit() {
        let (e, _) = engine();
        for n in 1..=5 {
            publish(&e, "c", n, HistoryOptions::default());
        }
        let all = now(e.history("c", None, None)).unwrap();
        assert_eq!(offsets(&all.publications), [1, 2, 3, 4, 5]);
        let none = now(e.history("c", Some(0), None)).unwrap();
        assert!(none.publications.is_empty());
        assert_eq!(none.position, all.position);
        let newest = now(e.history("c", Some(2), None)).unwrap();
        assert_eq!(offsets(&newest.publications), [4, 5]);
        let epoch = all.position.epoch.clone();
        let after = now(e.history("c", Some(2), Some(at(1, &epoch)))).unwrap();
        assert_eq!(offsets(&after.publications), [2, 3]);
        let rest = now(e.history("c", None, Some(at(3, &epoch)))).unwrap();
        assert_eq!(offsets(&rest.publications), [4, 5]);
        let beyond = now(e.history("c", None, Some(at(9, &epoch)))).unwrap();
        assert!(beyond.publications.is_empty());
        // An empty channel: offset 0, nothing.
        let empty = now(e.history("other", None, None)).unwrap();
        assert_eq!((empty.publications.len(), empty.position.offset), (0, 0));
    }

    #[test]
    fn history_since_another_epoch_is_empty_with_the_current_epoch() {
        let (e, _) = engine();
        for n in 1..=5 {
            publish(&e, "c", n, HistoryOptions::default());
        }
        let h = now(e.history("c", None, Some(at(2, &"other".into())))).unwrap();
        assert!(h.publications.is_empty());
        assert_eq!(h.position, now(e.position("c")).unwrap());
        assert_ne!(&*h.position.epoch, "other");
    }

    #[test]
    fn recovery_gives_exactly_the_missed_publications() {
        let (e, _) = engine();
        for n in 1..=30 {
            publish(&e, "c", n, HistoryOptions::default());
        }
        let epoch = now(e.position("c")).unwrap().epoch;
        let since = at(10, &epoch);
        for n in 31..=50 {
            publish(&e, "c", n, HistoryOptions::default());
        }
        let r = now(e.recover("c", at(30, &epoch), 1000)).unwrap();
        assert!(r.recovered);
        assert_eq!(offsets(&r.publications), (31..=50).collect::<Vec<_>>());
        assert_eq!(r.publications[0].payload.get(), r#"{"n":31}"#);
        assert_eq!(r.position, at(50, &epoch));
        // Exactly recovery_max missed: recovered; one more: refused.
        let r = now(e.recover("c", since.clone(), 40)).unwrap();
        assert!(r.recovered);
        assert_eq!(r.publications.len(), 40);
        // Nothing missed.
        let r = now(e.recover("c", at(50, &epoch), 0)).unwrap();
        assert!(r.recovered && r.publications.is_empty());
    }

    #[test]
    fn recovery_is_refused_over_recovery_max() {
        let (e, _) = engine();
        for n in 1..=50 {
            publish(&e, "c", n, HistoryOptions::default());
        }
        let epoch = now(e.position("c")).unwrap().epoch;
        let r = now(e.recover("c", at(10, &epoch), 39)).unwrap();
        assert!(!r.recovered);
        assert!(r.publications.is_empty());
        assert_eq!(r.position, at(50, &epoch));
    }

    #[test]
    fn recovery_is_refused_when_history_lost_some() {
        let (e, clock) = engine();
        for n in 1..=20 {
            publish(&e, "c", n, opts(10, 300));
        }
        let epoch = now(e.position("c")).unwrap().epoch;
        // 11..=20 are kept: from 10 recovers, from 9 not (10 is gone).
        assert!(now(e.recover("c", at(10, &epoch), 1000)).unwrap().recovered);
        let r = now(e.recover("c", at(9, &epoch), 1000)).unwrap();
        assert!(!r.recovered && r.publications.is_empty());
        // All expired by age.
        clock.advance(Duration::from_secs(301));
        assert!(!now(e.recover("c", at(19, &epoch), 1000)).unwrap().recovered);
        assert!(now(e.recover("c", at(20, &epoch), 1000)).unwrap().recovered);
        // Another epoch, or an offset ahead of the stream.
        assert!(
            !now(e.recover("c", at(20, &"x".into()), 1000))
                .unwrap()
                .recovered
        );
        assert!(!now(e.recover("c", at(21, &epoch), 1000)).unwrap().recovered);
    }

    #[test]
    fn subscribe_delivers_live_publications_after_its_recovery() {
        let (e, _) = engine();
        for n in 1..=5 {
            publish(&e, "c", n, HistoryOptions::default());
        }
        let epoch = now(e.position("c")).unwrap().epoch;
        let mut plain = now(e.subscribe("c", None, 1000)).unwrap();
        assert!(!plain.recovery.recovered);
        assert_eq!(plain.start(), &at(5, &epoch));
        let mut s = now(e.subscribe("c", Some(at(3, &epoch)), 1000)).unwrap();
        assert!(s.recovery.recovered);
        assert_eq!(offsets(&s.recovery.publications), [4, 5]);
        assert_eq!(s.try_recv(), Ok(None));
        let p6 = publish(&e, "c", 6, HistoryOptions::default());
        assert_eq!(
            s.try_recv(),
            Ok(Some(ChannelEvent::Publication(p6.clone())))
        );
        assert_eq!(now(plain.recv()), Ok(ChannelEvent::Publication(p6)));
        assert_eq!(s.try_recv(), Ok(None));
        assert_eq!(plain.try_recv(), Ok(None));
    }

    #[test]
    fn a_subscription_skips_what_its_recovery_covered() {
        // What a broker-backed engine relies on: a receiver registered before the history
        // read sees some recovered publications again; the subscription drops them.
        let (sender, receiver) = broadcast::channel(16);
        let epoch: Arc<str> = "e".into();
        let publication = |offset| {
            Arc::new(Publication {
                channel: "c".into(),
                offset,
                epoch: epoch.clone(),
                payload: json("null"),
                info: None,
                time: 0,
                wire: WireCache::default(),
            })
        };
        let recovery = Recovery {
            recovered: true,
            publications: vec![publication(4), publication(5)],
            position: at(5, &epoch),
        };
        let mut s = Subscription::new(recovery, receiver);
        for offset in 4..=7 {
            sender
                .send(ChannelEvent::Publication(publication(offset)))
                .unwrap();
        }
        assert_eq!(
            s.try_recv(),
            Ok(Some(ChannelEvent::Publication(publication(6))))
        );
        assert_eq!(
            s.try_recv(),
            Ok(Some(ChannelEvent::Publication(publication(7))))
        );
        assert_eq!(s.try_recv(), Ok(None));
        // The stream was lost ("Details": epoch change under live subscribers): the new
        // epoch's publications come through, from offset 1.
        let renewed = Arc::new(Publication {
            epoch: "f".into(),
            ..(*publication(1)).clone()
        });
        sender
            .send(ChannelEvent::Publication(renewed.clone()))
            .unwrap();
        assert_eq!(now(s.recv()), Ok(ChannelEvent::Publication(renewed)));
        drop(sender);
        assert_eq!(s.try_recv(), Err(RecvError::Closed));
    }

    #[test]
    fn a_slow_receiver_is_told_it_lagged() {
        let clock = Arc::new(ManualClock::new(T0));
        let config = MemoryConfig {
            channel_capacity: 4,
            ..MemoryConfig::default()
        };
        let e = MemoryEngine::with_clock(config, clock);
        let mut s = now(e.subscribe("c", None, 1000)).unwrap();
        for n in 1..=10 {
            publish(&e, "c", n, HistoryOptions::default());
        }
        assert_eq!(s.try_recv(), Err(RecvError::Lagged(6)));
    }

    #[test]
    fn subscribe_with_since_has_no_gap_under_a_concurrent_publisher() {
        const TOTAL: u64 = 20_000;
        let clock = Arc::new(ManualClock::new(T0));
        let config = MemoryConfig {
            channel_capacity: 32_768,
            ..MemoryConfig::default()
        };
        let e = Arc::new(MemoryEngine::with_clock(config, clock));
        let o = opts(100_000, 3600);
        let epoch = now(e.position("c")).unwrap().epoch;
        let publisher = {
            let e = e.clone();
            std::thread::spawn(move || {
                for n in 1..=TOTAL {
                    publish(&e, "c", n, o);
                }
            })
        };
        // Subscribers come in while the publisher runs, until one sees the stream's end;
        // each recovers from where the one before it started (from 0 for the first: all
        // of it is in history).
        let mut subscriptions = Vec::new();
        let mut since = 0;
        while since < TOTAL {
            let s = now(e.subscribe("c", Some(at(since, &epoch)), usize::MAX)).unwrap();
            assert!(s.recovery.recovered);
            let first = since + 1;
            since = s.start().offset;
            subscriptions.push((first, s));
            std::thread::sleep(Duration::from_micros(200));
        }
        publisher.join().unwrap();
        let mut mid_run = 0;
        for (first, mut s) in subscriptions {
            let start = s.start().offset;
            if start > 0 && start < TOTAL {
                mid_run += 1;
            }
            let mut seen = offsets(&s.recovery.publications);
            while let Some(event) = s.try_recv().unwrap() {
                match event {
                    ChannelEvent::Publication(p) => seen.push(p.offset),
                    other => panic!("unexpected {other:?}"),
                }
            }
            // Every offset after `since` exactly once, in order.
            assert_eq!(seen, (first..=TOTAL).collect::<Vec<_>>());
        }
        assert!(
            mid_run > 0,
            "no subscription landed while the publisher ran"
        );
    }

    #[test]
    fn presence_join_leave_and_listing() {
        let (e, _) = engine();
        let mut s = now(e.subscribe("c", None, 1000)).unwrap();
        now(e.presence_add("c", info("b", "bob"))).unwrap();
        now(e.presence_add("c", info("a", "alice"))).unwrap();
        now(e.presence_add("c", info("a", "alice"))).unwrap(); // a refresh: no second join
        assert_eq!(
            now(e.presence("c")).unwrap(),
            [info("a", "alice"), info("b", "bob")]
        );
        assert!(now(e.presence("other")).unwrap().is_empty());
        now(e.presence_remove("c", "b")).unwrap();
        now(e.presence_remove("c", "nobody")).unwrap(); // not there: no leave
        assert_eq!(now(e.presence("c")).unwrap(), [info("a", "alice")]);
        let p = now(e.publish("c", json("1"), Some(info("a", "alice")), opts(10, 10)));
        let p = p.unwrap();
        assert_eq!(p.info, Some(info("a", "alice")));
        let mut events = Vec::new();
        while let Some(event) = s.try_recv().unwrap() {
            events.push(event);
        }
        assert_eq!(
            events,
            [
                ChannelEvent::Join(info("b", "bob")),
                ChannelEvent::Join(info("a", "alice")),
                ChannelEvent::Leave(info("b", "bob")),
                ChannelEvent::Publication(p),
            ]
        );
    }

    #[test]
    fn position_outlives_history_for_a_day() {
        let (e, clock) = engine();
        for n in 1..=3 {
            publish(&e, "c", n, opts(100, 300));
        }
        let before = now(e.position("c")).unwrap();
        clock.advance(Duration::from_secs(301));
        let h = now(e.history("c", None, None)).unwrap();
        assert!(h.publications.is_empty());
        assert_eq!(h.position, before);
        // Just short of a day after the last call (a read counts as activity): still there.
        clock.advance(Duration::from_secs(24 * 3600 - 1));
        assert_eq!(now(e.position("c")).unwrap(), before);
        // A day with no activity at all: forgotten; a new epoch, offset 0, and the next
        // publication has offset 1.
        clock.advance(Duration::from_secs(24 * 3600));
        let after = now(e.position("c")).unwrap();
        assert_eq!(after.offset, 0);
        assert_ne!(after.epoch, before.epoch);
        assert_eq!(publish(&e, "c", 4, opts(100, 300)).offset, 1);
        assert!(!now(e.recover("c", before, 1000)).unwrap().recovered);
    }

    #[test]
    fn a_subscribed_channel_is_not_forgotten() {
        let (e, clock) = engine();
        publish(&e, "c", 1, opts(100, 300));
        let s = now(e.subscribe("c", None, 1000)).unwrap();
        let before = s.start().clone();
        clock.advance(Duration::from_secs(3 * 24 * 3600));
        // Another channel's call runs the shard sweeps; then this one is checked.
        publish(&e, "d", 1, opts(100, 300));
        assert_eq!(now(e.position("c")).unwrap(), before);
        drop(s);
        clock.advance(Duration::from_secs(24 * 3600));
        assert_eq!(now(e.position("c")).unwrap().offset, 0);
    }

    #[test]
    fn sweeps_drop_forgotten_channels() {
        let (e, clock) = engine();
        for i in 0..200 {
            publish(&e, &format!("c{i}"), 1, opts(100, 300));
        }
        let kept = now(e.subscribe("c0", None, 1000)).unwrap();
        let count =
            |e: &MemoryEngine| -> usize { e.shards.iter().map(|s| lock(s).channels.len()).sum() };
        clock.advance(Duration::from_secs(24 * 3600 - 1));
        e.sweep();
        assert_eq!(count(&e), 200);
        clock.advance(Duration::from_secs(1));
        e.sweep();
        assert_eq!(count(&e), 1);
        drop(kept);
        e.sweep();
        assert_eq!(count(&e), 0);
    }

    #[test]
    fn the_engine_is_usable_as_a_trait_object() {
        let e: Arc<dyn Engine> = Arc::new(MemoryEngine::default());
        // The payload goes out as it came in: key order and a number no f64 holds.
        let text = r#"{"z":1,"a":123456789012345678901234567890}"#;
        let p = now(e.publish("c", json(text), None, HistoryOptions::default()));
        assert_eq!(p.unwrap().offset, 1);
        let publication = now(e.history("c", None, None)).unwrap().publications[0].clone();
        let encoded = serde_json::to_string(&*publication).unwrap();
        assert!(
            encoded.contains(&format!(r#""payload":{text}"#)),
            "{encoded}"
        );
        assert!(encoded.contains(r#""channel":"c""#), "{encoded}");
        assert!(!encoded.contains("info"), "{encoded}");
        let back: Publication = serde_json::from_str(&encoded).unwrap();
        assert_eq!(back, *publication);
    }
}
