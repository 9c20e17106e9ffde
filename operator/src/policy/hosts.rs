//! Registry host names that reach the same registry: the one list of Docker Hub's hosts.
//!
//! Docker Hub answers to several names: `docker.io`, which image references use (and which
//! the reference grammar supplies when an image names no registry), the legacy index name
//! `index.docker.io`, and the registry API host `registry-1.docker.io` that runtimes actually
//! connect to. Matching, credentials and the registry client all read them from here.

/// The registry of images that name none: `busybox` is `docker.io/library/busybox`.
pub const DOCKER_HUB: &str = "docker.io";

/// The legacy name of [`DOCKER_HUB`], which the reference grammar folds into it.
pub const DOCKER_HUB_LEGACY: &str = "index.docker.io";

/// The host Docker Hub's registry API answers on.
pub const DOCKER_HUB_API: &str = "registry-1.docker.io";

/// Every name of Docker Hub, [`DOCKER_HUB`] first.
pub const DOCKER_HUB_HOSTS: [&str; 3] = [DOCKER_HUB, DOCKER_HUB_LEGACY, DOCKER_HUB_API];

/// The repository namespace of Docker Hub's official images: `busybox` is `library/busybox`.
pub const OFFICIAL_NAMESPACE: &str = "library/";

/// Whether a lowercase host name is one of Docker Hub's.
pub fn is_docker_hub(host: &str) -> bool {
    DOCKER_HUB_HOSTS.contains(&host)
}

/// The host that serves the registry API of `domain` (`host[:port]` as in a reference):
/// lowercase, and [`DOCKER_HUB_API`] for every name of Docker Hub.
pub fn api_host(domain: &str) -> String {
    let host = domain.to_ascii_lowercase();
    if is_docker_hub(&host) {
        DOCKER_HUB_API.to_owned()
    } else {
        host
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_hub_is_reached_on_its_api_host() {
        assert_eq!(api_host("docker.io"), "registry-1.docker.io");
        assert_eq!(api_host("Index.Docker.io"), "registry-1.docker.io");
        assert_eq!(api_host("127.0.0.1:5000"), "127.0.0.1:5000");
        assert!(DOCKER_HUB_HOSTS.iter().all(|h| is_docker_hub(h)));
        assert!(!is_docker_hub("docker.io.example.org"));
    }
}
