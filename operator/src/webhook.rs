//! The admission webhook: what it answers, and its HTTP routes.
//!
//! [`Webhook::handle`] takes the body of a `POST /signing-policy-check` and returns an
//! [`Answer`]: 200 with an AdmissionReview for every well-formed review, with what was
//! decided, or 400 with the reason for anything else; [`Webhook::pin`] answers `POST
//! /pin-digests`, the mutating webhook, likewise. [`review`] is the wire format (which images
//! of a request are checked is [`crate::workload`]'s), [`admit`] decides, [`pin`] rewrites, [`words`] says it, [`credentials`] finds what registries need,
//! and [`http`] routes requests to it and records each decision, with [`events`] publishing
//! the Kubernetes Events of refusals and Warn-mode admissions.

pub mod admit;
pub mod credentials;
pub mod decision;
pub mod events;
pub mod http;
pub mod pin;
pub mod review;
pub mod words;

use std::borrow::Cow;
use std::sync::Arc;

use tokio::sync::watch;

use self::admit::{Admission, Settings};
use self::credentials::CredentialSource;
use self::decision::Decision;
use self::pin::{Pin, Pinning};
use self::review::{Request, Response, ReviewError};
use crate::policy::PolicyState;
use crate::verify::Verifier;

/// Everything a request is decided with. Cheap to share; one per process.
pub struct Webhook {
    admission: Admission,
    pinning: Pinning,
}

/// An answer: what was decided and the review that says it, or why the body is not a
/// review.
#[derive(Debug, Clone)]
pub enum Answer {
    /// A well-formed review, decided: 200 with the AdmissionReview response. [`http`] records
    /// the rest (the log line, the metric, the Events).
    Decided {
        /// The request, as read.
        review: Box<Request>,
        /// What was decided.
        decision: Decision,
        /// The AdmissionReview response, in the request's version; for `/pin-digests`, with
        /// the JSON patch of `pins` when there is one.
        body: Vec<u8>,
        /// The images rewritten, for `/pin-digests`.
        pins: Vec<Pin>,
    },
    /// Not a review: 400 with this reason as text. The API server then applies the webhook's
    /// failure policy.
    Rejected(ReviewError),
}

impl Answer {
    /// The answer to a review decided.
    fn decided(review: Request, decision: Decision, body: Vec<u8>, pins: Vec<Pin>) -> Answer {
        Answer::Decided {
            review: Box::new(review),
            decision,
            body,
            pins,
        }
    }

    /// The HTTP status: 200 or 400.
    pub fn status(&self) -> u16 {
        match self {
            Answer::Decided { .. } => 200,
            Answer::Rejected(_) => 400,
        }
    }

    /// The body: the AdmissionReview response, or the reason as text.
    pub fn body(&self) -> Cow<'_, [u8]> {
        match self {
            Answer::Decided { body, .. } => Cow::Borrowed(body),
            Answer::Rejected(e) => Cow::Owned(e.to_string().into_bytes()),
        }
    }

    /// The body, owned.
    pub fn into_body(self) -> Vec<u8> {
        match self {
            Answer::Decided { body, .. } => body,
            Answer::Rejected(e) => e.to_string().into_bytes(),
        }
    }

    /// The request and what was decided; `None` for a body that is not a review.
    pub fn into_decision(self) -> Option<(Request, Decision)> {
        match self {
            Answer::Decided {
                review, decision, ..
            } => Some((*review, decision)),
            Answer::Rejected(_) => None,
        }
    }

    /// The images rewritten, for `/pin-digests`; none for anything else.
    pub fn pins(&self) -> &[Pin] {
        match self {
            Answer::Decided { pins, .. } => pins,
            Answer::Rejected(_) => &[],
        }
    }
}

impl Webhook {
    /// A webhook reading the policy from `policy`, published by the controller.
    pub fn new(
        policy: watch::Receiver<PolicyState>,
        verifier: Verifier,
        credentials: Arc<dyn CredentialSource>,
        settings: Settings,
    ) -> Self {
        let admission = Admission::new(policy, verifier, credentials, settings);
        Webhook {
            admission,
            pinning: Pinning::default(),
        }
    }

    /// The same, rewriting what `pinning` says in `/pin-digests`.
    pub fn with_pinning(self, pinning: Pinning) -> Self {
        Webhook { pinning, ..self }
    }

    /// What decides: for deciding images without a review (`image-policy check`).
    pub fn admission(&self) -> &Admission {
        &self.admission
    }

    /// The `metadata.uid` of the policy now in force (or now refused as invalid), if known.
    pub fn policy_uid(&self) -> Option<String> {
        self.admission
            .policy
            .borrow()
            .version()
            .and_then(|v| v.uid.clone())
    }

    /// Answers one request body.
    pub async fn handle(&self, body: &[u8]) -> Answer {
        match self.decide(body).await {
            Ok((review, decision)) => {
                let body = Response::of(&decision).to_body(&review);
                Answer::decided(review, decision, body, Vec::new())
            }
            Err(e) => Answer::Rejected(e),
        }
    }

    /// Answers one request body of the mutating webhook: refused as validation would refuse
    /// it; else admitted, with a patch that pins each verified image written with a tag to
    /// its digest, when [`Pinning`] covers the request. Warnings are left to validation, which
    /// runs after, so that kubectl does not print them twice.
    pub async fn pin(&self, body: &[u8]) -> Answer {
        let request = match Request::parse(body) {
            Ok(request) => request,
            Err(e) => return Answer::Rejected(e),
        };
        let decision = if self.pinning.covers(&request) {
            match self.admission.decide(&request, body).await {
                Ok(decision) => decision,
                Err(e) => return Answer::Rejected(e),
            }
        } else {
            Decision::untouched()
        };
        let pins = pin::pins(&request, &decision);
        let body = if !decision.allowed {
            Response::of(&decision).to_body(&request)
        } else if pins.is_empty() {
            Response::allow().to_body(&request)
        } else {
            Response::allow()
                .with_patch(&pin::json_patch(&pins))
                .to_body(&request)
        };
        Answer::decided(request, decision, body, pins)
    }

    async fn decide(&self, body: &[u8]) -> Result<(Request, Decision), ReviewError> {
        let request = Request::parse(body)?;
        let decision = self.admission.decide(&request, body).await?;
        Ok((request, decision))
    }
}
