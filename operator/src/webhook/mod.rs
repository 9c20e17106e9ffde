//! The admission webhook: the HTTPS server, and what it answers.
//!
//! [`Webhook::handle`] takes the body of a `POST /signing-policy-check` and returns the
//! status and body to send: 200 with an AdmissionReview for every well-formed review, 400
//! with the reason for anything else.

pub mod credentials;
pub mod http;
pub mod review;
pub mod server;

use std::sync::Arc;

use image_policy_crd::ClusterImagePolicy;
use tokio::sync::watch;

use self::review::{CredentialSource, Decision, PolicyState, Request, ReviewError, Settings};
use crate::policy::Snapshot;
use crate::verify::Verifier;

/// Everything a request is decided with. Cheap to share; one per process.
pub struct Webhook {
    policy: watch::Receiver<PolicyState>,
    verifier: Verifier,
    credentials: Arc<dyn CredentialSource>,
    settings: Settings,
}

/// An answer: the HTTP status and the body.
#[derive(Debug, Clone)]
pub struct Answer {
    /// 200 or 400.
    pub status: u16,
    /// The AdmissionReview response, or an error text.
    pub body: Vec<u8>,
    /// What was decided, for logs and metrics; `None` for a 400.
    pub decision: Option<(Request, Decision)>,
}

impl Webhook {
    /// A webhook reading the policy from `policy`, published by the controller.
    pub fn new(
        policy: watch::Receiver<PolicyState>,
        verifier: Verifier,
        credentials: Arc<dyn CredentialSource>,
        settings: Settings,
    ) -> Self {
        Webhook {
            policy,
            verifier,
            credentials,
            settings,
        }
    }

    /// Answers one request body.
    pub async fn handle(&self, body: &[u8]) -> Answer {
        match self.decide(body).await {
            Ok((request, decision)) => {
                let body = review::response(&request, &decision);
                Answer {
                    status: 200,
                    body,
                    decision: Some((request, decision)),
                }
            }
            Err(e) => Answer {
                status: 400,
                body: e.to_string().into_bytes(),
                decision: None,
            },
        }
    }

    async fn decide(&self, body: &[u8]) -> Result<(Request, Decision), ReviewError> {
        let request = Request::parse(body)?;
        if request.kind == "ClusterImagePolicy" {
            let decision = validate_policy(&request, body);
            return Ok((request, decision));
        }
        let Some(images) = request.images_to_check()? else {
            return Ok((request, Decision::untouched()));
        };
        // One consistent policy for the whole request, without holding the channel's lock.
        let policy = self.policy.borrow().clone();
        let decision = review::decide(
            &request,
            images,
            &policy,
            &self.verifier,
            self.credentials.as_ref(),
            self.settings,
        )
        .await;
        Ok((request, decision))
    }
}

/// Refuses a `ClusterImagePolicy` with another name or one that does not compile, listing
/// every problem with its field path. The only review that reads its object whole, from
/// `body` again: policies are few and rarely changed.
fn validate_policy(request: &Request, body: &[u8]) -> Decision {
    if !matches!(request.operation.as_str(), "CREATE" | "UPDATE") {
        return Decision::untouched();
    }
    let policy = Request::object_value(body)
        .map_err(|e| e.to_string())
        .and_then(|object| {
            serde_json::from_value::<ClusterImagePolicy>(object).map_err(|e| e.to_string())
        });
    let problems = match policy {
        Ok(policy) => match Snapshot::compile(&policy) {
            Ok(_) => return Decision::untouched(),
            Err(problems) => problems.to_string(),
        },
        Err(e) => e,
    };
    Decision::denied(
        "InvalidPolicy",
        format!(
            "ClusterImagePolicy {:?} is invalid: {problems}",
            request.name
        ),
    )
}
