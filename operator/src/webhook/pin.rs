//! Pinning (docs/contract.md §2): the mutating webhook's answer. Each image of a Pod that the
//! policy covers and that is written with a tag is rewritten `name:tag@sha256:<digest>`, the
//! digest its verification accepted, so that what a node pulls is content-addressed: a tag
//! moved after admission, or a registry that answers a tag's HEAD with one digest and serves
//! other bytes, cannot change what runs. The images are those of [`crate::workload`]: the
//! containers' `image` and the image volumes' `image.reference` (whose `pullPolicy` stays).
//!
//! The mutation decides exactly as validation does ([`super::admit`]) and refuses what it
//! would refuse, with the same words: it never admits on its own. An image written with a
//! digest, an excluded namespace and an unmatched image are left as they are, and cost no
//! registry request. The validating webhook, which runs after, verifies the digest written: a
//! verdict-cache hit.

use serde::Serialize;

use super::decision::{Decision, Outcome};
use super::review::Request;

/// What the mutating webhook rewrites.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Pinning {
    /// Pods only (and `kubectl debug`'s ephemeral containers): the templates of Deployments
    /// and other controllers stay as written, so GitOps tools see no drift, and each Pod they
    /// create is pinned when it is created.
    #[default]
    Pods,
    /// Pods, and the pod templates of every workload kind: every replica on one digest.
    Workloads,
    /// Nothing: `/pin-digests` admits everything unchanged.
    Off,
}

impl Pinning {
    /// Whether a request of this kind and subresource is rewritten.
    pub fn covers(self, request: &Request) -> bool {
        let pod =
            request.kind == "Pod" || request.sub_resource.as_deref() == Some("ephemeralcontainers");
        match self {
            Pinning::Off => false,
            Pinning::Pods => pod,
            Pinning::Workloads => pod || crate::workload::pod_spec_path(&request.kind).is_some(),
        }
    }
}

/// One image rewritten.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin {
    /// The JSON pointer of its field: a container's `image`, an image volume's
    /// `image/reference`.
    pub pointer: String,
    /// The image as written.
    pub written: String,
    /// The digest written after it.
    pub digest: String,
}

impl Pin {
    /// The image as it is rewritten.
    pub fn pinned(&self) -> String {
        format!("{}@{}", self.written, self.digest)
    }
}

/// The images of `request` that `decision` verified and that are written without a digest.
pub fn pins(request: &Request, decision: &Decision) -> Vec<Pin> {
    if !decision.allowed {
        return Vec::new();
    }
    request
        .change()
        .image_fields()
        .into_iter()
        .filter(|(_, written)| !written.contains('@'))
        .filter_map(|(pointer, written)| {
            let digest = decision
                .outcomes
                .iter()
                .find_map(|(image, outcome)| match outcome {
                    Outcome::Admitted { digest, .. } if *image == written => Some(digest.clone()),
                    _ => None,
                })?;
            Some(Pin {
                pointer,
                written,
                digest,
            })
        })
        .collect()
}

/// The JSON patch (RFC 6902) of `pins`: one `replace` each.
pub fn json_patch(pins: &[Pin]) -> Vec<u8> {
    #[derive(Serialize)]
    struct Operation<'a> {
        op: &'static str,
        path: &'a str,
        value: String,
    }
    let operations: Vec<Operation<'_>> = pins
        .iter()
        .map(|pin| Operation {
            op: "replace",
            path: &pin.pointer,
            value: pin.pinned(),
        })
        .collect();
    // A list of borrowed strings serializes into a Vec without fail.
    serde_json::to_vec(&operations).unwrap_or_default()
}
