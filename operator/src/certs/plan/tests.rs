#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::time::UNIX_EPOCH;

use super::*;
use crate::certs::issue::issue;

const SEC: Duration = Duration::from_secs(1);

fn s(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn names(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// A CA and a pair for `names`, valid for `lifetimes.validity` from `now` (as the manager
/// issues them).
fn made(names: &BTreeSet<String>, now: SystemTime, lifetimes: Lifetimes) -> (Ca, Pair) {
    issue(names, now, now + lifetimes.validity)
        .unwrap()
        .into_parts()
}

/// The world the manager acts on: the Secret and the webhooks' `caBundle`s.
struct World {
    stored: Stored,
    published: Vec<String>,
    names: BTreeSet<String>,
    lifetimes: Lifetimes,
}

impl World {
    fn new(lifetimes: Lifetimes) -> World {
        World {
            stored: Stored::default(),
            published: vec![String::new(), String::new()],
            names: names(&["image-policy-webhook-service.image-policy-system.svc"]),
            lifetimes,
        }
    }

    /// One pass of the manager: steps until Idle, or until a Publish (the API server is given
    /// until the next pass to see the new bundle). Returns the steps taken.
    fn pass(&mut self, now: SystemTime) -> Vec<Step> {
        let mut steps = Vec::new();
        for _ in 0..8 {
            let trusted_before = self.trusted(now);
            let step = plan(
                &self.stored,
                &self.published,
                &self.names,
                now,
                self.lifetimes,
            );
            steps.push(step);
            match step {
                Step::Issue { immediate } => {
                    let (ca, pair) = made(&self.names, now, self.lifetimes);
                    self.stored = issued(&self.stored, immediate, ca, pair);
                }
                Step::Publish => {
                    let bundle = self.stored.bundle_pem();
                    self.published
                        .iter_mut()
                        .for_each(|p| p.clone_from(&bundle));
                    return steps;
                }
                Step::Switch => self.stored = switched(&self.stored),
                Step::Tidy => self.stored = tidied(&self.stored, now),
                Step::Idle => return steps,
            }
            // No step ever breaks a working state, but for an immediate issue, which replaces
            // a certificate that is not usable (wrong names, expired).
            if trusted_before && step != (Step::Issue { immediate: true }) {
                self.assert_trusted(now);
            }
        }
        panic!("no Idle or Publish after 8 steps: {steps:?}");
    }

    /// Whether the API server trusts what is served: its issuer is in every published bundle.
    fn trusted(&self, now: SystemTime) -> bool {
        let Some(serving) = &self.stored.serving else {
            return false;
        };
        self.published.iter().all(|published| {
            read_pem(published).unwrap().iter().any(|ca| {
                ca.subject == serving.info.issuer
                    && now < ca.not_after
                    && now < serving.info.not_after
            })
        })
    }

    fn assert_trusted(&self, now: SystemTime) {
        assert!(self.trusted(now), "the served certificate is not trusted");
    }

    fn serial(&self) -> String {
        self.stored.serving.as_ref().unwrap().cert.clone()
    }
}

fn lifetimes(validity: u64, renew_before: u64) -> Lifetimes {
    Lifetimes {
        validity: s(validity),
        renew_before: s(renew_before),
    }
}

#[test]
fn a_first_install_issues_publishes_and_then_rests() {
    let t0 = UNIX_EPOCH + s(1_800_000_000);
    let mut world = World::new(lifetimes(3600, 1200));
    assert_eq!(
        world.pass(t0),
        vec![Step::Issue { immediate: true }, Step::Publish]
    );
    assert!(world.stored.next.is_none());
    assert_eq!(world.stored.bundle.len(), 1);
    world.assert_trusted(t0);
    assert_eq!(world.pass(t0 + SEC), vec![Step::Idle]);
    assert_eq!(world.pass(t0 + s(2399)), vec![Step::Idle], "not due yet");
}

#[test]
fn a_renewal_publishes_the_new_ca_before_it_serves_the_new_certificate() {
    let t0 = UNIX_EPOCH + s(1_800_000_000);
    let mut world = World::new(lifetimes(3600, 1200));
    world.pass(t0);
    let first = world.serial();

    let due = t0 + s(2400);
    assert_eq!(
        world.pass(due),
        vec![Step::Issue { immediate: false }, Step::Publish]
    );
    assert_eq!(world.serial(), first, "still serving the first certificate");
    assert!(world.stored.next.is_some());
    assert_eq!(world.stored.bundle.len(), 2, "both CAs published");

    assert_eq!(world.pass(due + SEC), vec![Step::Switch, Step::Idle]);
    assert_ne!(world.serial(), first);
    assert_eq!(
        world.stored.bundle.len(),
        2,
        "the old CA stays until it expires"
    );

    // The first CA expires with the first certificate; then it leaves the bundle.
    let expired = t0 + s(3600);
    assert_eq!(world.pass(expired), vec![Step::Tidy, Step::Publish]);
    assert_eq!(world.stored.bundle.len(), 1);
    assert_eq!(world.pass(expired + SEC), vec![Step::Idle]);
}

#[test]
fn the_served_certificate_is_trusted_through_many_rotations() {
    // Short lifetimes, a pass every 2 s over ten validity periods, as the e2e suite runs it.
    let t0 = UNIX_EPOCH + s(1_800_000_000);
    let mut world = World::new(lifetimes(30, 20));
    let mut served = BTreeSet::new();
    let mut now = t0;
    world.pass(now);
    while now < t0 + s(300) {
        now += s(2);
        let steps = world.pass(now);
        assert!(
            !steps.contains(&Step::Issue { immediate: true }),
            "a rotation served an untrusted certificate: {steps:?}"
        );
        world.assert_trusted(now);
        let serving = &world.stored.serving.as_ref().unwrap().info;
        assert!(now < serving.not_after, "an expired certificate is served");
        assert!(world.stored.bundle.len() <= 2, "the bundle grows");
        served.insert(world.serial());
    }
    assert!(served.len() >= 20, "{} certificates", served.len());
}

#[test]
fn wrong_names_expiry_and_garbage_are_replaced_at_once() {
    let t0 = UNIX_EPOCH + s(1_800_000_000);
    let mut world = World::new(lifetimes(3600, 1200));
    world.pass(t0);

    // The webhook configuration now names another host.
    world.names = names(&["127.0.0.1"]);
    assert_eq!(
        world.pass(t0 + SEC),
        vec![Step::Issue { immediate: true }, Step::Publish]
    );
    assert_eq!(
        world.stored.serving.as_ref().unwrap().info.names,
        world.names
    );
    assert_eq!(world.stored.bundle.len(), 1);

    // The operator was away past expiry.
    let late = t0 + s(7200);
    assert_eq!(
        world.pass(late),
        vec![Step::Issue { immediate: true }, Step::Publish]
    );

    // Someone wrote garbage into the Secret.
    let (stored, problems) = Stored::read(|key| match key {
        keys::CERT => {
            Some(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".to_vec())
        }
        keys::KEY => Some(b"x".to_vec()),
        keys::CA => Some(b"not pem".to_vec()),
        keys::NEXT_CERT => Some(b"y".to_vec()),
        _ => None,
    });
    assert!(stored.serving.is_none() && stored.next.is_none() && stored.bundle.is_empty());
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(
        problems.iter().any(|p| p.starts_with("tls.crt")),
        "{problems:?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.contains("next.crt has no next.key")),
        "{problems:?}"
    );
    world.stored = stored;
    assert_eq!(world.pass(late + SEC)[0], Step::Issue { immediate: true });
}

#[test]
fn a_rotation_stopped_after_any_step_is_finished_by_the_next_pass() {
    let t0 = UNIX_EPOCH + s(1_800_000_000);
    let lifetimes = lifetimes(3600, 1200);
    let mut world = World::new(lifetimes);
    world.pass(t0);
    let due = t0 + s(2400);

    // Stopped after Issue: the bundle was never published.
    let (ca, pair) = made(&world.names, due, lifetimes);
    world.stored = issued(&world.stored, false, ca, pair);
    assert_eq!(world.pass(due + SEC), vec![Step::Publish]);
    assert_eq!(world.pass(due + s(2)), vec![Step::Switch, Step::Idle]);

    // A next left behind long ago, no longer good, while what is served is fresh: dropped.
    let mut world = World::new(lifetimes);
    world.pass(t0);
    let (ca, mut pair) = made(&world.names, t0, lifetimes);
    pair.info.issuer = b"someone else".to_vec();
    world.stored.next = Some(pair);
    world.stored.bundle.push(ca);
    assert_eq!(world.pass(t0 + SEC), vec![Step::Publish]);
    assert_eq!(world.pass(t0 + s(2)), vec![Step::Tidy, Step::Idle]);
    assert!(world.stored.next.is_none());
}

#[test]
fn a_key_that_does_not_serve_its_certificate_is_replaced() {
    let t0 = SystemTime::now();
    let mut world = World::new(lifetimes(3600, 1200));
    world.pass(t0);
    let other = issue(&world.names, t0, t0 + s(3600)).unwrap();
    let data: std::collections::BTreeMap<_, _> = world.stored.data().into_iter().collect();
    let (read, problems) = Stored::read(|key| match key {
        keys::KEY => Some(other.key.as_bytes().to_vec()),
        _ => data.get(key).map(|v| v.as_bytes().to_vec()),
    });
    assert!(read.serving.is_none(), "a mismatched key was kept");
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("tls.crt key"), "{problems:?}");
    world.stored = read;
    assert_eq!(world.pass(t0 + SEC)[0], Step::Issue { immediate: true });
}

#[test]
fn the_secret_round_trips() {
    let t0 = SystemTime::now();
    let mut world = World::new(lifetimes(3600, 1200));
    world.pass(t0);
    let (ca, pair) = made(&world.names, t0, world.lifetimes);
    world.stored = issued(&world.stored, false, ca, pair);
    let data: std::collections::BTreeMap<_, _> = world.stored.data().into_iter().collect();
    let (read, problems) = Stored::read(|key| data.get(key).map(|v| v.as_bytes().to_vec()));
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(read, world.stored);
    // Without a next, its keys are absent, and an empty Secret reads as nothing at all.
    let data: std::collections::BTreeMap<_, _> = switched(&read).data().into_iter().collect();
    assert!(!data.contains_key(keys::NEXT_CERT));
    let (empty, problems) = Stored::read(|_| Some(Vec::new()));
    assert_eq!((empty, problems), (Stored::default(), vec![]));
}
