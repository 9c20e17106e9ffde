//! The bound on open connections, and which connection makes room for a new one.
//!
//! A flood of idle connections must not shut out the API server's. So when a new connection
//! arrives at the limit, the connection that has been idle longest (no request in flight,
//! counting a TLS handshake not yet done as idle since it was accepted) is asked to close,
//! and the new one is served. Only when every open connection has a request in flight is
//! the new one closed instead. A client that keeps opening connections thus only ever
//! displaces its own older idle ones, while a connection that carries requests (the API
//! server keeps a few, busy) is the last to go; a fresh connection is the newest idle one,
//! so it has the whole limit's worth of later arrivals in which to send its first request.
//!
//! The table is scanned under a lock only when the limit is reached: a few microseconds at
//! the default of 1024, against the handshake that the new connection then costs anyway.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::Notify;
use tokio::time::Instant;

/// The open connections of one server, at most `limit` of them (`None`: any number).
pub(super) struct Connections {
    limit: Option<usize>,
    started: Instant,
    table: Mutex<Table>,
}

#[derive(Default)]
struct Table {
    next_id: u64,
    open: HashMap<u64, Arc<State>>,
}

/// What the table knows of one connection.
#[derive(Default)]
struct State {
    /// Requests being answered on it now.
    in_flight: AtomicUsize,
    /// When it last finished a request (or was accepted), in milliseconds since `started`.
    idle_since_ms: AtomicU64,
    /// Told when it must close to make room.
    close: Notify,
}

/// Whether a connection just accepted finds room: what to do with it.
pub(super) enum Room {
    /// Serve it; the [`Slot`] keeps its place until dropped.
    Serve(Slot),
    /// Every open connection has a request in flight: close this one.
    Full,
}

impl Connections {
    pub(super) fn new(limit: Option<usize>) -> Arc<Self> {
        Arc::new(Connections {
            limit: limit.map(|limit| limit.max(1)),
            started: Instant::now(),
            table: Mutex::new(Table::default()),
        })
    }

    /// How many connections hold a slot now.
    pub(super) fn open(&self) -> usize {
        self.lock().open.len()
    }

    /// A slot for a new connection, asking the longest-idle one to close if at the limit.
    pub(super) fn admit(self: &Arc<Self>) -> Room {
        let now = self.now_ms();
        let mut table = self.lock();
        if self.limit.is_some_and(|limit| table.open.len() >= limit) {
            let idlest = table
                .open
                .iter()
                .filter(|(_, state)| state.in_flight.load(Ordering::Acquire) == 0)
                .min_by_key(|(id, state)| (state.idle_since_ms.load(Ordering::Relaxed), **id))
                .map(|(id, _)| *id);
            let Some(evicted) = idlest.and_then(|id| table.open.remove(&id)) else {
                return Room::Full;
            };
            // Stored if the connection is not waiting yet (still in its handshake, say).
            evicted.close.notify_one();
        }
        let id = table.next_id;
        table.next_id += 1;
        let state = Arc::new(State {
            idle_since_ms: AtomicU64::new(now),
            ..State::default()
        });
        table.open.insert(id, Arc::clone(&state));
        Room::Serve(Slot {
            id,
            state,
            connections: Arc::clone(self),
        })
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        // The table holds plain counters: a panic elsewhere cannot leave it inconsistent.
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One connection's place in the table; dropping it frees the place.
pub(super) struct Slot {
    id: u64,
    state: Arc<State>,
    connections: Arc<Connections>,
}

impl Slot {
    /// Resolves when the connection must close to make room for a newer one.
    pub(super) async fn closing(&self) {
        self.state.close.notified().await;
    }

    /// Whether a request is in flight on it now.
    pub(super) fn busy(&self) -> bool {
        self.state.in_flight.load(Ordering::Acquire) > 0
    }

    /// Marks a request in flight until the returned guard is dropped.
    pub(super) fn request(&self) -> InFlight {
        self.state.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight {
            state: Arc::clone(&self.state),
            connections: Arc::clone(&self.connections),
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        // Already gone if it was evicted; the id is never reused, so this removes nothing else.
        self.connections.lock().open.remove(&self.id);
    }
}

/// A request being answered; see [`Slot::request`].
pub(super) struct InFlight {
    state: Arc<State>,
    connections: Arc<Connections>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.state
            .idle_since_ms
            .store(self.connections.now_ms(), Ordering::Relaxed);
        self.state.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use std::time::Duration;

    use super::*;

    fn slot(connections: &Arc<Connections>) -> Slot {
        match connections.admit() {
            Room::Serve(slot) => slot,
            Room::Full => panic!("no room"),
        }
    }

    async fn is_closing(slot: &Slot) -> bool {
        tokio::time::timeout(Duration::from_millis(10), slot.closing())
            .await
            .is_ok()
    }

    #[tokio::test]
    async fn without_a_limit_nothing_is_ever_closed() {
        let connections = Connections::new(None);
        let slots: Vec<Slot> = (0..100).map(|_| slot(&connections)).collect();
        assert_eq!(connections.open(), 100);
        assert!(!is_closing(&slots[0]).await);
    }

    #[tokio::test(start_paused = true)]
    async fn at_the_limit_the_longest_idle_connection_makes_room() {
        let step = || tokio::time::advance(Duration::from_millis(5));
        let connections = Connections::new(Some(3));
        let busy = slot(&connections); // t=0, a request in flight throughout
        let _request = busy.request();
        step().await;
        let old_idle = slot(&connections); // t=5, idle since
        step().await;
        let served = slot(&connections); // t=10
        let request = served.request();
        step().await;
        drop(request); // t=15: idle since
        step().await;
        // t=20: the longest idle goes; busy since before it, `busy` stays.
        let newest = slot(&connections);
        assert!(is_closing(&old_idle).await);
        assert!(!is_closing(&busy).await);
        assert!(!is_closing(&served).await);
        assert_eq!(connections.open(), 3);
        step().await;
        // t=25: `served` (idle since 15) before `newest` (idle since 20).
        let _another = slot(&connections);
        assert!(is_closing(&served).await);
        assert!(!is_closing(&newest).await);
        assert!(!is_closing(&busy).await);
    }

    #[tokio::test]
    async fn when_every_connection_is_busy_the_new_one_is_refused() {
        let connections = Connections::new(Some(2));
        let a = slot(&connections);
        let b = slot(&connections);
        let (_ra, _rb) = (a.request(), b.request());
        assert!(matches!(connections.admit(), Room::Full));
        assert_eq!(connections.open(), 2);
    }

    #[tokio::test]
    async fn a_closed_connection_frees_its_place() {
        let connections = Connections::new(Some(1));
        let a = slot(&connections);
        let _r = a.request();
        assert!(matches!(connections.admit(), Room::Full));
        drop(_r);
        drop(a);
        assert_eq!(connections.open(), 0);
        let b = slot(&connections);
        assert!(!is_closing(&b).await);
    }
}
