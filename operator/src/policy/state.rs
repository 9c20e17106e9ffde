//! What is enforced: the [`PolicyState`] that the controller publishes and that every
//! admission and the status reconciler read, and the [`Publisher`] that turns the watch of
//! the policy `image-policy` into it.
//!
//! Pure: the controller feeds watch events to [`Publisher::step`] and sends what it returns.
//! A valid policy is compiled into a snapshot and published whole. An invalid one after a
//! valid one keeps the last valid snapshot enforced (it may have landed while the webhook was
//! down); an invalid one with nothing valid before it makes every image be refused with the
//! policy's problems, so that a broken policy never silently admits.

use std::sync::Arc;

use image_policy_crd::ClusterImagePolicy;
use kube::runtime::watcher::Event;

use super::problem::Problems;
use super::snapshot::{Snapshot, Version};
use super::trust::Documents;

/// What the webhook knows of the policy when a request arrives.
#[derive(Debug, Clone)]
pub enum PolicyState {
    /// Not yet known (the controller has not listed policies yet): fail closed.
    Loading,
    /// No `ClusterImagePolicy` named `image-policy` exists.
    Absent,
    /// The policy as it now is, compiled and in force.
    Active(Arc<Snapshot>),
    /// The policy as it now is does not compile.
    Invalid(Arc<Rejected>),
}

/// A version of the policy that does not compile, and what is enforced instead.
#[derive(Debug)]
pub struct Rejected {
    /// Its uid and generation.
    pub version: Version,
    /// Every problem found in it.
    pub problems: Problems,
    /// The last valid version, still in force; `None`: every image is refused.
    pub enforced: Option<Arc<Snapshot>>,
}

impl PolicyState {
    /// A policy that does not compile, with nothing valid before it.
    pub fn invalid(problems: Problems) -> Self {
        PolicyState::Invalid(Arc::new(Rejected {
            version: Version::default(),
            problems,
            enforced: None,
        }))
    }

    /// The snapshot admissions decide with, if any.
    pub fn enforced(&self) -> Option<&Arc<Snapshot>> {
        match self {
            PolicyState::Active(snapshot) => Some(snapshot),
            PolicyState::Invalid(rejected) => rejected.enforced.as_ref(),
            PolicyState::Loading | PolicyState::Absent => None,
        }
    }

    /// The version of the policy this state is of: `None` before one was seen or when none
    /// exists.
    pub fn version(&self) -> Option<&Version> {
        match self {
            PolicyState::Active(snapshot) => Some(snapshot.version()),
            PolicyState::Invalid(rejected) => Some(&rejected.version),
            PolicyState::Loading | PolicyState::Absent => None,
        }
    }

    /// A fixed name of the state, for logs: `Loading`, `Absent`, `Active`, `Invalid`.
    pub fn label(&self) -> &'static str {
        match self {
            PolicyState::Loading => "Loading",
            PolicyState::Absent => "Absent",
            PolicyState::Active(_) => "Active",
            PolicyState::Invalid(_) => "Invalid",
        }
    }
}

/// What the publisher remembers between watch events.
#[derive(Debug, Default)]
pub struct Publisher {
    last_valid: Option<Arc<Snapshot>>,
    /// The policy listed so far while the watch (re)lists: `Some(None)` once a list began.
    listing: Option<Option<ClusterImagePolicy>>,
    /// The version last published: `Some(None)` for "no policy".
    published: Option<Option<Version>>,
    /// The policy as it now is.
    current: Option<ClusterImagePolicy>,
    /// The ConfigMaps that trusted roots are read from.
    documents: Documents,
}

impl Publisher {
    /// Advances with one event of the watch of `image-policy`: the state to publish, or
    /// `None` when the event changes nothing that admission reads.
    ///
    /// A (re)list is buffered until it is done, so that a relist does not publish "absent"
    /// for a moment. A status write is an update too, but the spec, and so the state, only
    /// changes with the generation (or with a new object of the same name): an object whose
    /// uid and generation were published already is skipped.
    pub fn step(&mut self, event: Event<ClusterImagePolicy>) -> Option<PolicyState> {
        let current = match event {
            Event::Init => {
                self.listing = Some(None);
                return None;
            }
            Event::InitApply(policy) => {
                self.listing = Some(Some(policy));
                return None;
            }
            Event::InitDone => self.listing.take().flatten(),
            Event::Apply(policy) => Some(policy),
            Event::Delete(_) => None,
        };
        let seen = current.as_ref().map(Version::of);
        let known_generation = seen.as_ref().is_some_and(|v| v.generation.is_some());
        if known_generation && self.published.as_ref() == Some(&seen) {
            return None;
        }
        self.published = Some(seen);
        self.current = current;
        Some(self.compile())
    }

    /// Takes the ConfigMaps of the operator's namespace as they now are: the state to
    /// publish when the policy reads a trusted root from them, `None` otherwise.
    pub fn documents(&mut self, documents: Documents) -> Option<PolicyState> {
        if documents == self.documents {
            return None;
        }
        self.documents = documents;
        let reads_roots = self
            .current
            .as_ref()
            .is_some_and(|p| !p.spec.verification.trusted_roots.is_empty());
        reads_roots.then(|| self.compile())
    }

    fn compile(&mut self) -> PolicyState {
        let current = self.current.take();
        let state = self.next(current.as_ref());
        self.current = current;
        state
    }

    /// The state for the policy as it now is (`None`: it does not exist).
    pub fn next(&mut self, policy: Option<&ClusterImagePolicy>) -> PolicyState {
        let Some(policy) = policy else {
            self.last_valid = None;
            return PolicyState::Absent;
        };
        match Snapshot::compile_with(policy, &self.documents) {
            Ok(snapshot) => {
                let snapshot = Arc::new(snapshot);
                self.last_valid = Some(snapshot.clone());
                PolicyState::Active(snapshot)
            }
            Err(problems) => PolicyState::Invalid(Arc::new(Rejected {
                version: Version::of(policy),
                problems,
                enforced: self.last_valid.clone(),
            })),
        }
    }
}

#[cfg(test)]
mod tests;
