//! The last known answer of the API server for each Secret and service account, served at
//! once and refreshed behind the reader's back (stale-while-revalidate).
//!
//! An admission must not wait on the API server for credentials it has read before: with the
//! API server slow or frozen, a cache that expires makes every review wait out the credential
//! budget, even for images whose verdict is cached and needs no credential at all. So an
//! entry never expires while it is used: a read older than `refresh_after` is answered from
//! it, and one refresh starts in the background, bounded by `refresh_budget`; its answer
//! replaces the entry, its failure keeps the last known one (and the next read tries again).
//! A change applies at the first read `refresh_after` after the last refresh, plus the time
//! that refresh takes. Only a first read, of something never read before, waits for the API
//! server (concurrent first reads of one key share one request); a failed first read is not
//! kept. Entries unused for `idle` are dropped.

use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use moka::future::Cache;
use tokio::time::Instant;

/// The entries, by key.
pub(super) struct Fresh<K, V> {
    entries: Cache<K, Arc<Entry<V>>>,
    refresh_after: Duration,
    refresh_budget: Duration,
}

struct Entry<V> {
    value: V,
    read_at: Instant,
    /// A refresh of this entry is under way.
    refreshing: AtomicBool,
}

impl<V> Entry<V> {
    fn new(value: V) -> Arc<Self> {
        Arc::new(Entry {
            value,
            read_at: Instant::now(),
            refreshing: AtomicBool::new(false),
        })
    }
}

impl<K, V> Fresh<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// At most `capacity` entries, refreshed when older than `refresh_after`.
    pub(super) fn new(
        capacity: u64,
        refresh_after: Duration,
        refresh_budget: Duration,
        idle: Duration,
    ) -> Self {
        Fresh {
            entries: Cache::builder()
                .max_capacity(capacity)
                .time_to_idle(idle)
                .build(),
            refresh_after,
            refresh_budget,
        }
    }

    /// The value of `key`: the last known one, or read with `read` if there is none yet
    /// (`None` if that read fails). `read` makes one read of the API server; `Err` means it
    /// could not answer (an absent object is an answer, in `V`).
    pub(super) async fn get<F, Fut>(&self, key: K, read: F) -> Option<V>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<V, ()>> + Send + 'static,
    {
        if let Some(entry) = self.entries.get(&key).await {
            if entry.read_at.elapsed() >= self.refresh_after
                && !entry.refreshing.swap(true, Ordering::AcqRel)
            {
                let (entries, budget, refresh) =
                    (self.entries.clone(), self.refresh_budget, read());
                let stale = Arc::clone(&entry);
                tokio::spawn(async move {
                    match tokio::time::timeout(budget, refresh).await {
                        Ok(Ok(value)) => entries.insert(key, Entry::new(value)).await,
                        // Keep what is known; the next read past the age tries again.
                        _ => stale.refreshing.store(false, Ordering::Release),
                    }
                });
            }
            return Some(entry.value.clone());
        }
        let first = read();
        self.entries
            .try_get_with(key, async move { first.await.map(Entry::new) })
            .await
            .ok()
            .map(|entry| entry.value.clone())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::atomic::AtomicUsize;

    use super::*;

    /// A source whose answers and failures the test sets, counting its reads.
    #[derive(Clone, Default)]
    struct Source {
        value: Arc<AtomicUsize>,
        down: Arc<AtomicBool>,
        reads: Arc<AtomicUsize>,
    }

    impl Source {
        fn read(&self) -> impl Future<Output = Result<usize, ()>> + Send + 'static {
            let this = self.clone();
            async move {
                this.reads.fetch_add(1, Ordering::SeqCst);
                if this.down.load(Ordering::SeqCst) {
                    // A frozen API server: no answer within any budget.
                    std::future::pending::<()>().await;
                }
                Ok(this.value.load(Ordering::SeqCst))
            }
        }
    }

    fn fresh() -> Fresh<&'static str, usize> {
        Fresh::new(
            100,
            Duration::from_secs(5),
            Duration::from_secs(2),
            Duration::from_secs(3600),
        )
    }

    async fn settle() {
        // Let a spawned refresh run.
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_value_is_read_once_then_served_and_refreshed_when_old() {
        let (cache, source) = (fresh(), Source::default());
        source.value.store(1, Ordering::SeqCst);
        assert_eq!(cache.get("k", || source.read()).await, Some(1));
        source.value.store(2, Ordering::SeqCst);
        assert_eq!(cache.get("k", || source.read()).await, Some(1));
        assert_eq!(
            source.reads.load(Ordering::SeqCst),
            1,
            "served from the entry"
        );
        tokio::time::advance(Duration::from_secs(5)).await;
        // Old: answered at once with what is known, refreshed behind.
        assert_eq!(cache.get("k", || source.read()).await, Some(1));
        settle().await;
        assert_eq!(cache.get("k", || source.read()).await, Some(2));
        assert_eq!(source.reads.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn an_api_server_that_does_not_answer_leaves_the_last_value_served_at_once() {
        let (cache, source) = (fresh(), Source::default());
        source.value.store(7, Ordering::SeqCst);
        assert_eq!(cache.get("k", || source.read()).await, Some(7));
        source.down.store(true, Ordering::SeqCst);
        tokio::time::advance(Duration::from_secs(6)).await;
        for _ in 0..50 {
            let started = Instant::now();
            assert_eq!(cache.get("k", || source.read()).await, Some(7));
            assert_eq!(started.elapsed(), Duration::ZERO, "never waits");
        }
        settle().await;
        assert_eq!(
            source.reads.load(Ordering::SeqCst),
            2,
            "one refresh at a time"
        );
        // The refresh gives up after its budget; the next read starts another.
        tokio::time::advance(Duration::from_secs(3)).await;
        settle().await;
        assert_eq!(cache.get("k", || source.read()).await, Some(7));
        settle().await;
        assert_eq!(source.reads.load(Ordering::SeqCst), 3);
        // Back: the change applies.
        source.down.store(false, Ordering::SeqCst);
        source.value.store(8, Ordering::SeqCst);
        tokio::time::advance(Duration::from_secs(3)).await;
        settle().await;
        assert_eq!(cache.get("k", || source.read()).await, Some(7));
        settle().await;
        assert_eq!(cache.get("k", || source.read()).await, Some(8));
    }

    #[tokio::test]
    async fn a_failed_first_read_is_not_kept() {
        let cache = fresh();
        assert_eq!(cache.get("k", || async { Err(()) }).await, None);
        assert_eq!(cache.get("k", || async { Ok(3) }).await, Some(3));
    }
}
