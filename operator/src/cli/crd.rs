//! `image-policy crd`: the ClusterImagePolicy CustomResourceDefinition as YAML, made from the
//! API types of `crd/` (what `make crd` checks in under the chart's `crds/`).

use std::io::Write;

use image_policy_crd::ClusterImagePolicy;
use kube::CustomResourceExt;

use super::error::CliError;

/// Runs `crd`: prints the CRD.
pub fn run(out: &mut impl Write) -> Result<(), CliError> {
    out.write_all(crd_yaml().as_bytes())?;
    Ok(())
}

/// The CRD as checked in under `charts/image-policy-webhook/crds/`.
pub fn crd_yaml() -> String {
    // Serializing a value built from our own types cannot fail; an empty document would be
    // caught by the drift test.
    serde_yaml::to_string(&ClusterImagePolicy::crd()).unwrap_or_default()
}
