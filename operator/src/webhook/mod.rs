//! The admission webhook: what it answers, and its HTTP routes.
//!
//! [`Webhook::handle`] takes the body of a `POST /signing-policy-check` and returns an
//! [`Answer`]: 200 with an AdmissionReview for every well-formed review, with what was
//! decided, or 400 with the reason for anything else. [`review`] is the wire format,
//! [`admit`] decides, [`words`] says it, [`credentials`] finds what registries need, and
//! [`http`] routes requests to it and records each decision.

pub mod admit;
pub mod credentials;
pub mod decision;
pub mod http;
pub mod review;
pub mod words;

use std::sync::Arc;

use tokio::sync::watch;

use self::admit::{Admission, Settings};
use self::credentials::CredentialSource;
use self::decision::Decision;
use self::review::{Request, Response, ReviewError};
use crate::policy::PolicyState;
use crate::verify::Verifier;

/// Everything a request is decided with. Cheap to share; one per process.
pub struct Webhook {
    admission: Admission,
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
}

impl Webhook {
    /// A webhook reading the policy from `policy`, published by the controller.
    pub fn new(
        policy: watch::Receiver<PolicyState>,
        verifier: Verifier,
        credentials: Arc<dyn CredentialSource>,
        settings: Settings,
    ) -> Self {
        let admission = Admission {
            policy,
            verifier,
            credentials,
            settings,
        };
        Webhook { admission }
    }

    /// What decides: for deciding images without a review (`image-policy check`).
    pub fn admission(&self) -> &Admission {
        &self.admission
    }

    /// Answers one request body.
    pub async fn handle(&self, body: &[u8]) -> Answer {
        match self.decide(body).await {
            Ok((request, decision)) => Answer {
                status: 200,
                body: Response::of(&decision).to_body(&request),
                decision: Some((request, decision)),
                rejected: None,
            },
            Err(e) => Answer {
                status: 400,
                body: e.to_string().into_bytes(),
                decision: None,
                rejected: Some(e),
            },
        }
    }

    async fn decide(&self, body: &[u8]) -> Result<(Request, Decision), ReviewError> {
        let request = Request::parse(body)?;
        let decision = self.admission.decide(&request, body).await?;
        Ok((request, decision))
    }
}
