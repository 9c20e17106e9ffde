//! Leader election for status writes, with a `coordination.k8s.io/v1` `Lease` named
//! `image-policy-controller` in the operator's namespace.
//!
//! Every replica serves admissions from its own snapshot; only the holder of the lease
//! writes status, so that replicas do not fight over it. The rules are client-go's: the
//! holder renews every [`RENEW_PERIOD`]; a candidate takes the lease over once its record
//! has not changed for the lease's duration *by the candidate's own clock* (so clock skew
//! between nodes does not matter); a holder that could not renew for [`RENEW_DEADLINE`]
//! stops writing before anyone else may start. Writes are optimistic (the read
//! `resourceVersion`), so two candidates never both win.
//!
//! A replica that stops (SIGTERM) releases the lease as client-go does with
//! `ReleaseOnCancel`: it stops acting as the leader, then empties the holder, so a candidate
//! takes over at its next look (within [`RENEW_PERIOD`]) instead of waiting the lease out. A
//! replica that is killed cannot: the next one then waits out its lease (15 s) before it
//! writes again. Admissions are not affected either way.

use std::hash::{BuildHasher, RandomState};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::PostParams;
use kube::{Api, Client};
use tokio::sync::watch;

/// The lease's name.
pub const LEASE_NAME: &str = "image-policy-controller";
/// How long a lease is valid without renewal.
pub const LEASE_DURATION: Duration = Duration::from_secs(15);
/// How often the holder renews, and a candidate looks.
pub const RENEW_PERIOD: Duration = Duration::from_secs(5);
/// How long a holder that cannot renew still acts as the leader; less than
/// [`LEASE_DURATION`], so that it stops before a candidate may take over.
pub const RENEW_DEADLINE: Duration = Duration::from_secs(10);

/// This replica's identity: `POD_NAME` when set (the Deployment passes it through the
/// downward API), else the host name with a random suffix.
pub fn identity() -> String {
    if let Some(pod) = std::env::var("POD_NAME").ok().filter(|p| !p.is_empty()) {
        return pod;
    }
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "image-policy".to_owned());
    // RandomState is seeded randomly per process: enough to tell two processes apart.
    let suffix = RandomState::new().hash_one(std::process::id()) as u32;
    format!("{host}-{suffix:08x}")
}

/// What a candidate does with the lease as it read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseAction {
    /// It holds the lease: renew it.
    Renew,
    /// Nobody holds it, or the holder let it expire: take it.
    Acquire,
    /// Another holds it and renews it: wait.
    Wait,
}

/// Decides what `me` does, given the lease's holder and duration and how long its record
/// has been seen unchanged.
pub fn decide(
    holder: Option<&str>,
    duration: Duration,
    unchanged_for: Duration,
    me: &str,
) -> LeaseAction {
    match holder.filter(|h| !h.is_empty()) {
        Some(h) if h == me => LeaseAction::Renew,
        None => LeaseAction::Acquire,
        Some(_) if unchanged_for >= duration => LeaseAction::Acquire,
        Some(_) => LeaseAction::Wait,
    }
}

/// Remembers when the lease's record last changed, by the local clock.
#[derive(Debug, Default)]
pub struct RecordAge {
    seen: Option<(LeaseSpec, Instant)>,
}

impl RecordAge {
    /// Records `spec` as read at `now`, and returns how long it has been unchanged (zero
    /// on the first sight and on every change).
    pub fn observe(&mut self, spec: &LeaseSpec, now: Instant) -> Duration {
        match &self.seen {
            Some((seen, since)) if seen == spec => now.saturating_duration_since(*since),
            _ => {
                self.seen = Some((spec.clone(), now));
                Duration::ZERO
            }
        }
    }
}

/// Competes for the lease until `stop` resolves, and says on `leading` whether this replica
/// holds it; on `stop`, releases it if held.
pub async fn lead(
    client: Client,
    namespace: String,
    me: String,
    leading: watch::Sender<bool>,
    stop: impl std::future::Future<Output = ()>,
) {
    let api: Api<Lease> = Api::namespaced(client, &namespace);
    let mut record_age = RecordAge::default();
    let mut renewed: Option<Instant> = None;
    let mut ticks = tokio::time::interval(RENEW_PERIOD);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut stop = std::pin::pin!(stop);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = &mut stop => {
                // First stop acting as the leader, then let the others know.
                let held = leading.send_replace(false);
                if held {
                    match release(&api, &me).await {
                        Ok(true) => tracing::info!(target: "image-policy.controller", %namespace, lease = LEASE_NAME, identity = %me, "Lease released"),
                        Ok(false) => {}
                        Err(e) => tracing::warn!(target: "image-policy.controller", %namespace, lease = LEASE_NAME, error = %e, "Lease could not be released; it expires on its own"),
                    }
                }
                return;
            }
        }
        let now = Instant::now();
        match attempt(&api, &me, &mut record_age, now).await {
            Ok(true) => renewed = Some(now),
            Ok(false) => renewed = None,
            Err(e) => {
                tracing::warn!(target: "image-policy.controller", %namespace, lease = LEASE_NAME, error = %e, "Lease could not be read or written");
            }
        }
        let holds = renewed.is_some_and(|t| now.saturating_duration_since(t) < RENEW_DEADLINE);
        let changed = leading.send_if_modified(|l| std::mem::replace(l, holds) != holds);
        if changed {
            tracing::info!(target: "image-policy.controller", %namespace, lease = LEASE_NAME, identity = %me, leading = holds, "Leadership changed");
        }
    }
}

/// One look at the lease; `Ok(true)` when this replica holds it afterwards.
async fn attempt(
    api: &Api<Lease>,
    me: &str,
    record_age: &mut RecordAge,
    now: Instant,
) -> Result<bool, kube::Error> {
    let Some(mut lease) = api.get_opt(LEASE_NAME).await? else {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(LEASE_NAME.to_owned()),
                ..ObjectMeta::default()
            },
            spec: Some(taken(None, me)),
        };
        return match api.create(&PostParams::default(), &lease).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.is_already_exists() => Ok(false),
            Err(e) => Err(e),
        };
    };
    let spec = lease.spec.clone().unwrap_or_default();
    let duration = spec
        .lease_duration_seconds
        .and_then(|s| u64::try_from(s).ok())
        .map_or(LEASE_DURATION, Duration::from_secs);
    let unchanged_for = record_age.observe(&spec, now);
    let next = match decide(spec.holder_identity.as_deref(), duration, unchanged_for, me) {
        LeaseAction::Wait => return Ok(false),
        LeaseAction::Renew => LeaseSpec {
            renew_time: Some(MicroTime(Timestamp::now())),
            lease_duration_seconds: Some(duration_seconds()),
            ..spec
        },
        LeaseAction::Acquire => taken(Some(&spec), me),
    };
    lease.spec = Some(next);
    // `replace` sends the resourceVersion read above: a concurrent writer makes it conflict.
    match api
        .replace(LEASE_NAME, &PostParams::default(), &lease)
        .await
    {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.is_conflict() => Ok(false),
        Err(e) => Err(e),
    }
}

/// Empties the holder of the lease if `me` holds it; `Ok(true)` when released.
async fn release(api: &Api<Lease>, me: &str) -> Result<bool, kube::Error> {
    let Some(mut lease) = api.get_opt(LEASE_NAME).await? else {
        return Ok(false);
    };
    let Some(spec) = lease.spec.take() else {
        return Ok(false);
    };
    if spec.holder_identity.as_deref() != Some(me) {
        return Ok(false);
    }
    lease.spec = Some(released(spec));
    api.replace(LEASE_NAME, &PostParams::default(), &lease)
        .await
        .map(|_| true)
}

/// The lease as its holder leaves it: no holder, and a duration of one second for clients
/// that wait out the duration before they look at the holder.
fn released(spec: LeaseSpec) -> LeaseSpec {
    let now = MicroTime(Timestamp::now());
    LeaseSpec {
        holder_identity: Some(String::new()),
        lease_duration_seconds: Some(1),
        acquire_time: Some(now.clone()),
        renew_time: Some(now),
        ..spec
    }
}

/// The lease as `me` takes it over from `previous`.
fn taken(previous: Option<&LeaseSpec>, me: &str) -> LeaseSpec {
    let now = MicroTime(Timestamp::now());
    let transitions = previous.and_then(|p| p.lease_transitions).unwrap_or(0);
    LeaseSpec {
        holder_identity: Some(me.to_owned()),
        lease_duration_seconds: Some(duration_seconds()),
        acquire_time: Some(now.clone()),
        renew_time: Some(now),
        lease_transitions: Some(if previous.is_some() {
            transitions.saturating_add(1)
        } else {
            0
        }),
        ..LeaseSpec::default()
    }
}

fn duration_seconds() -> i32 {
    i32::try_from(LEASE_DURATION.as_secs()).unwrap_or(i32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn the_holder_renews_and_others_wait_until_it_expires() {
        assert_eq!(decide(Some("a"), S(15), S(100), "a"), LeaseAction::Renew);
        assert_eq!(decide(None, S(15), S(0), "a"), LeaseAction::Acquire);
        assert_eq!(
            decide(Some(""), S(15), S(0), "a"),
            LeaseAction::Acquire,
            "released"
        );
        assert_eq!(decide(Some("b"), S(15), S(14), "a"), LeaseAction::Wait);
        assert_eq!(decide(Some("b"), S(15), S(15), "a"), LeaseAction::Acquire);
        assert_eq!(
            decide(Some("b"), S(30), S(20), "a"),
            LeaseAction::Wait,
            "the lease's own duration"
        );
    }

    #[test]
    fn expiry_is_measured_from_the_last_change_seen_locally() {
        let t0 = Instant::now();
        let held = |renewed: i64| LeaseSpec {
            holder_identity: Some("b".into()),
            renew_time: Some(MicroTime(Timestamp::from_second(renewed).expect("time"))),
            ..LeaseSpec::default()
        };
        let mut record_age = RecordAge::default();
        // A record renewed long ago by the writer's clock is not expired on first sight.
        assert_eq!(record_age.observe(&held(1), t0), S(0));
        assert_eq!(record_age.observe(&held(1), t0 + S(10)), S(10));
        // A renewal restarts the count.
        assert_eq!(record_age.observe(&held(2), t0 + S(12)), S(0));
        assert_eq!(record_age.observe(&held(2), t0 + S(27)), S(15));
        let unchanged = record_age.observe(&held(2), t0 + S(27));
        assert_eq!(
            decide(Some("b"), LEASE_DURATION, unchanged, "a"),
            LeaseAction::Acquire
        );
    }

    #[test]
    fn taking_over_counts_transitions() {
        let first = taken(None, "a");
        assert_eq!(first.holder_identity.as_deref(), Some("a"));
        assert_eq!(first.lease_transitions, Some(0));
        assert_eq!(first.lease_duration_seconds, Some(15));
        assert!(first.renew_time.is_some() && first.acquire_time.is_some());
        assert_eq!(taken(Some(&first), "b").lease_transitions, Some(1));
        const { assert!(RENEW_PERIOD.as_secs() < RENEW_DEADLINE.as_secs()) };
        const { assert!(RENEW_DEADLINE.as_secs() < LEASE_DURATION.as_secs()) };
    }

    #[test]
    fn a_released_lease_is_taken_at_the_next_look() {
        let held = taken(None, "a");
        let released = released(held.clone());
        assert_eq!(released.holder_identity.as_deref(), Some(""));
        assert_eq!(released.lease_transitions, held.lease_transitions);
        // A candidate that has watched it unchanged for no time at all takes it.
        let mut record_age = RecordAge::default();
        let unchanged = record_age.observe(&released, Instant::now());
        assert_eq!(
            decide(released.holder_identity.as_deref(), S(1), unchanged, "b"),
            LeaseAction::Acquire
        );
    }

    #[test]
    fn the_identity_is_the_pod_name_or_unique() {
        // POD_NAME is not set under `cargo test`.
        if std::env::var_os("POD_NAME").is_none() {
            assert_ne!(identity(), identity());
        }
    }
}
