//! The admission webhook: what it answers, and its HTTP routes.
//!
//! [`Webhook::handle`] takes the body of a `POST /signing-policy-check` and returns an
//! [`Answer`]: 200 with an AdmissionReview for every well-formed review, with what was
//! decided, or 400 with the reason for anything else; [`Webhook::pin`] answers `POST
//! /pin-digests`, the mutating webhook, likewise. [`review`] is the wire format, [`admit`]
//! decides, [`pin`] rewrites, [`words`] says it, [`credentials`] finds what registries need,
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

/// An answer: the HTTP status and the body, and what led to them.
#[derive(Debug, Clone)]
pub struct Answer {
    /// 200 or 400.
    pub status: u16,
    /// The AdmissionReview response, or an error text.
    pub body: Vec<u8>,
    /// What was decided, for logs and metrics; `None` for a 400.
    pub decision: Option<(Request, Decision)>,
    /// Why the body is not a review, for a 400.
    pub rejected: Option<ReviewError>,
    /// The images rewritten, for `/pin-digests`.
    pub pins: Vec<Pin>,
}

impl Answer {
    fn rejected(e: ReviewError) -> Answer {
        Answer {
            status: 400,
            body: e.to_string().into_bytes(),
            decision: None,
            rejected: Some(e),
            pins: Vec::new(),
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
            Ok((request, decision)) => Answer {
                status: 200,
                body: Response::of(&decision).to_body(&request),
                decision: Some((request, decision)),
                rejected: None,
                pins: Vec::new(),
            },
            Err(e) => Answer::rejected(e),
        }
    }

    /// Answers one request body of the mutating webhook: refused as validation would refuse
    /// it; else admitted, with a patch that pins each verified image written with a tag to
    /// its digest, when [`Pinning`] covers the request. Warnings are left to validation, which
    /// runs after, so that kubectl does not print them twice.
    pub async fn pin(&self, body: &[u8]) -> Answer {
        let request = match Request::parse(body) {
            Ok(request) => request,
            Err(e) => return Answer::rejected(e),
        };
        let decision = if self.pinning.covers(&request) {
            match self.admission.decide(&request, body).await {
                Ok(decision) => decision,
                Err(e) => return Answer::rejected(e),
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
        Answer {
            status: 200,
            body,
            decision: Some((request, decision)),
            rejected: None,
            pins,
        }
    }

    async fn decide(&self, body: &[u8]) -> Result<(Request, Decision), ReviewError> {
        let request = Request::parse(body)?;
        let decision = self.admission.decide(&request, body).await?;
        Ok((request, decision))
    }
}
