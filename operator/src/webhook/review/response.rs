//! The AdmissionReview written back: [`Response`], allowed or denied, with warnings and, for
//! the mutating webhook, a JSON patch; in the version the request came in.

use base64::Engine as _;
use serde::Serialize;

use super::Request;
use crate::webhook::decision::Decision;

/// An AdmissionResponse, in the shape of kube's `AdmissionResponse`: allowed or denied with
/// a message, warnings, and a JSON patch for a mutating webhook.
#[derive(Debug, Clone, Copy)]
pub struct Response<'a> {
    allowed: bool,
    message: Option<&'a str>,
    warnings: &'a [String],
    patch: Option<&'a [u8]>,
}

impl<'a> Response<'a> {
    /// Admitted.
    pub fn allow() -> Self {
        Response {
            allowed: true,
            message: None,
            warnings: &[],
            patch: None,
        }
    }

    /// Refused with `message`.
    pub fn deny(message: &'a str) -> Self {
        Response {
            allowed: false,
            message: Some(message),
            ..Response::allow()
        }
    }

    /// The response of a decision: its verdict, its denial and its warnings.
    pub fn of(decision: &'a Decision) -> Self {
        Response {
            allowed: decision.allowed,
            message: decision.message.as_deref(),
            warnings: &decision.warnings,
            patch: None,
        }
    }

    /// With these warnings, which `kubectl` prints as `Warning: <text>`.
    pub fn with_warnings(self, warnings: &'a [String]) -> Self {
        Response { warnings, ..self }
    }

    /// With a JSON patch (RFC 6902) of the object.
    pub fn with_patch(self, patch: &'a [u8]) -> Self {
        Response {
            patch: Some(patch),
            ..self
        }
    }

    /// The AdmissionReview body answering `request`, in its version: serialized straight
    /// from borrowed fields, with its keys in the order a JSON value's map writes them.
    pub fn to_body(&self, request: &Request) -> Vec<u8> {
        #[derive(Serialize)]
        struct Review<'a> {
            #[serde(rename = "apiVersion")]
            api_version: &'static str,
            kind: &'static str,
            response: Body<'a>,
        }

        #[derive(Serialize)]
        struct Body<'a> {
            allowed: bool,
            #[serde(skip_serializing_if = "Option::is_none")]
            patch: Option<String>,
            #[serde(rename = "patchType", skip_serializing_if = "Option::is_none")]
            patch_type: Option<&'static str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            status: Option<Status<'a>>,
            uid: &'a str,
            #[serde(skip_serializing_if = "<[String]>::is_empty")]
            warnings: &'a [String],
        }

        #[derive(Serialize)]
        struct Status<'a> {
            code: u16,
            message: &'a str,
            reason: &'a str,
            status: &'static str,
        }

        // kubectl prints `Error from server (<reason>): <message>`; users of VMware Tanzu's
        // Image Policy Webhook read the denial in both places (docs/contract.md §2).
        let status = self.message.map(|message| Status {
            code: 403,
            message,
            reason: message,
            status: "Failure",
        });
        let patch = self
            .patch
            .map(|p| base64::engine::general_purpose::STANDARD.encode(p));
        let review = Review {
            api_version: request.version.as_str(),
            kind: "AdmissionReview",
            response: Body {
                allowed: self.allowed,
                patch_type: patch.as_ref().map(|_| "JSONPatch"),
                patch,
                status,
                uid: &request.uid,
                warnings: self.warnings,
            },
        };
        // Room for the envelope and what it says, so that it is written without growing.
        let words = self.message.map_or(0, |m| 2 * m.len())
            + self.warnings.iter().map(String::len).sum::<usize>()
            + review.response.patch.as_ref().map_or(0, String::len);
        let mut body = Vec::with_capacity(160 + request.uid.len() + words);
        // Serializing borrowed strings and numbers into a Vec cannot fail.
        match serde_json::to_writer(&mut body, &review) {
            Ok(()) => body,
            Err(_) => Vec::new(),
        }
    }
}
