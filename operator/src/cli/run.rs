//! `image-policy run`: the operator. One process runs the controller, which publishes the
//! policy state, the HTTPS admission webhook, which reads it on every request, the publisher
//! of its Events, and the plain HTTP health and metrics port.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::certs::{CertArgs, manage};
use crate::controller::running::RunningSettings;
use crate::duration::parse_duration;
use crate::policy::PolicyState;
use crate::server::{CertObserver, CertSource, ProvidedCert, ServerConfig, ServerError, serve};
use crate::telemetry::{Metrics, Readiness, init_logging, serve_health};
use crate::verify::Verifier;
use crate::verify::args::VerifierArgs;
use crate::webhook::Webhook;
use crate::webhook::admit::Settings;
use crate::webhook::credentials::KubeCredentials;
use crate::webhook::events::{EventSink, QUEUE_CAPACITY};
use crate::webhook::http::Routes;
use crate::webhook::pin::Pinning;

/// Arguments of `image-policy run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Where the HTTPS webhook listens.
    #[arg(long, default_value = "0.0.0.0:8443")]
    webhook_addr: SocketAddr,
    /// Where /healthz, /readyz and /metrics listen (plain HTTP).
    #[arg(long, default_value = "0.0.0.0:8080")]
    metrics_addr: SocketAddr,
    /// The webhook's serving certificate (PEM); re-read when it changes.
    #[arg(
        long,
        value_name = "FILE",
        required_unless_present = "tls_secret",
        requires = "tls_key_file"
    )]
    tls_cert_file: Option<PathBuf>,
    /// The webhook's private key (PEM); re-read when it changes.
    #[arg(long, value_name = "FILE", requires = "tls_cert_file")]
    tls_key_file: Option<PathBuf>,
    #[command(flatten)]
    certificates: CertArgs,
    /// Admit images that match no pattern, with a warning, instead of denying them.
    #[arg(long)]
    allow_unmatched_images: bool,
    /// What the mutating webhook (POST /pin-digests) rewrites to the verified digest: Pods,
    /// the pod templates of every workload too, or nothing.
    #[arg(long, value_enum, value_name = "WHAT", default_value_t = Pinning::Pods)]
    pin_digests: Pinning,
    /// Record a Kubernetes Event on the ClusterImagePolicy and on the object's controller for
    /// each refusal and each admission in Warn mode (`--events=false`: none).
    #[arg(
        long,
        value_name = "BOOL",
        default_value_t = true,
        num_args = 0..=1,
        default_missing_value = "true",
        action = clap::ArgAction::Set
    )]
    events: bool,
    #[command(flatten)]
    verifier: VerifierArgs,
    /// The operator's namespace, home of the image-policy-registry-credentials account.
    #[arg(long, default_value = "image-policy-system")]
    namespace: String,
    /// How many connections the webhook serves at once. At the limit a new connection makes
    /// the one idle longest close (the API server's busy ones stay); each costs about 20 KiB.
    #[arg(long, value_name = "N", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..))]
    max_connections: u32,
    /// How often the running workloads are checked against the policy (besides after each
    /// policy change), with the result in the policy's status.running.
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = parse_duration)]
    resync_period: Duration,
    /// While checking the running workloads, at most this many images decided a second (each
    /// decided once per check, through the verifier's caches).
    #[arg(long, value_name = "N", default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    running_check_rate: u32,
    /// While checking the running workloads, at most this many images decided at once (the
    /// check's own bound: admissions never wait for it).
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=1024))]
    running_check_concurrency: u32,
    /// The bound on one check of the running workloads: an image not decided by then is
    /// listed as refused, its verification timed out.
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = parse_duration)]
    running_check_timeout: Duration,
    #[command(flatten)]
    scope: super::audit::Scope,
    /// Log level or filter directive; RUST_LOG when empty.
    #[arg(long, default_value = "info")]
    log_level: String,
    /// On SIGTERM, how long to go on serving admissions while /readyz says 503, so that the
    /// API server stops sending them here before the listener closes.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    shutdown_delay: Duration,
    /// Then, how long in-flight admissions may take to finish.
    #[arg(long, value_name = "DURATION", default_value = "15s", value_parser = parse_duration)]
    shutdown_grace: Duration,
}

/// Runs the operator until SIGTERM or SIGINT.
pub fn run(args: RunArgs) -> anyhow::Result<()> {
    init_logging(&args.log_level)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(operate(args))
}

/// Starts every part of the operator, then serves until a signal, and shuts down in order.
async fn operate(args: RunArgs) -> anyhow::Result<()> {
    // Bad flags are refused before anything connects.
    let cert_settings = args.certificates.settings(&args.namespace)?;
    let client = kube::Client::try_default().await?;

    let (state_tx, state_rx) = watch::channel(PolicyState::Loading);
    let metrics = Metrics::new();
    let verifier = Verifier::new(args.verifier.config()?)?.with_observer(Arc::new(metrics.clone()));
    let readiness = Readiness::new();
    let shutdown = Shutdown::default();
    // The lease holder writes status and the managed certificate; every replica serves.
    let (leading_tx, leading_rx) = watch::channel(false);
    let controller = tokio::spawn(crate::controller::publish(
        client.clone(),
        state_tx,
        args.namespace.clone(),
        leading_tx,
        shutdown.stopping(),
    ));
    let mut serving =
        serving_certificate(&args, &client, cert_settings, &metrics, leading_rx.clone())?;
    let readiness_task = tokio::spawn(track_readiness(
        state_rx.clone(),
        readiness.clone(),
        metrics.clone(),
        serving.ready.take(),
    ));
    let deciding = Deciding::new(&args, &client, state_rx, verifier);
    start_running_check(&args, &client, &deciding, leading_rx, &metrics);
    let routes = routes(&args, client, &deciding, &metrics);

    let (mut server, health) =
        start_servers(&args, serving, routes, metrics, &readiness, &shutdown).await?;
    tokio::select! {
        () = shutdown_signal() => {}
        result = &mut server => {
            // It only returns early when it cannot start (the address is taken, say).
            result??;
            return Ok(());
        }
    }
    let tasks = Tasks {
        readiness: readiness_task,
        server,
        health,
        controller,
    };
    shut_down(&args, &readiness, &shutdown, tasks).await
}

/// Starts the webhook's HTTPS server and the plain HTTP health and metrics server, both
/// until `shutdown` drains.
async fn start_servers(
    args: &RunArgs,
    serving: Serving,
    routes: Routes,
    metrics: Metrics,
    readiness: &Readiness,
    shutdown: &Shutdown,
) -> anyhow::Result<(
    JoinHandle<Result<(), ServerError>>,
    JoinHandle<std::io::Result<()>>,
)> {
    let mut config = ServerConfig::with_certificate(serving.source);
    config.certificate_observer = Some(serving.observer);
    config.addr = args.webhook_addr;
    config.shutdown_grace = args.shutdown_grace;
    config.max_connections = Some(args.max_connections as usize);
    let health = tokio::net::TcpListener::bind(args.metrics_addr)
        .await
        .map_err(|e| anyhow::anyhow!("--metrics-addr {}: {e}", args.metrics_addr))?;
    tracing::info!(target: "image-policy", webhook = %args.webhook_addr, metrics = %args.metrics_addr, "Starting");
    let health = tokio::spawn(serve_health(
        health,
        metrics,
        readiness.clone(),
        shutdown.draining(),
    ));
    let server = tokio::spawn(serve(config, Arc::new(routes), shutdown.draining()));
    Ok((server, health))
}

/// The tasks that shutting down stops or waits for.
struct Tasks {
    /// Turns the policy state into `/readyz`: stopped, so that it cannot say ready again.
    readiness: JoinHandle<()>,
    /// The webhook's server: its in-flight admissions are waited for.
    server: JoinHandle<Result<(), ServerError>>,
    /// The health and metrics server.
    health: JoinHandle<std::io::Result<()>>,
    /// The controller, which releases the lease as it stops.
    controller: JoinHandle<()>,
}

/// After SIGTERM: not ready at once while admissions are still served for
/// `--shutdown-delay`, then the listeners close and in-flight admissions finish (within
/// `--shutdown-grace`) while the controller releases the lease.
async fn shut_down(
    args: &RunArgs,
    readiness: &Readiness,
    shutdown: &Shutdown,
    tasks: Tasks,
) -> anyhow::Result<()> {
    let delay = format!("{:?}", args.shutdown_delay);
    tracing::info!(target: "image-policy", %delay, "Shutting down: not ready, still serving admissions");
    tasks.readiness.abort();
    readiness.set_not_ready();
    shutdown.stop();
    tokio::time::sleep(args.shutdown_delay).await;
    shutdown.drain();
    let (server, _, _) = tokio::join!(
        tasks.server,
        tasks.health,
        tokio::time::timeout(Duration::from_secs(5), tasks.controller)
    );
    server??;
    tracing::info!(target: "image-policy", "Stopped");
    Ok(())
}

/// What admissions and the running check decide with: the policy state the controller
/// publishes, one verifier (so one set of caches) and the cluster's registry credentials.
struct Deciding {
    policy: watch::Receiver<PolicyState>,
    verifier: Verifier,
    credentials: Arc<KubeCredentials>,
    settings: Settings,
}

impl Deciding {
    fn new(
        args: &RunArgs,
        client: &kube::Client,
        policy: watch::Receiver<PolicyState>,
        verifier: Verifier,
    ) -> Self {
        // Pull secrets and service accounts read before are served at once and refreshed
        // when 5 s old: a change applies within seconds, a frozen API server slows no
        // admission.
        let credentials = Arc::new(KubeCredentials::new(
            client.clone(),
            args.namespace.clone(),
            Duration::from_secs(5),
        ));
        let settings = Settings {
            allow_unmatched_images: args.allow_unmatched_images,
        };
        Deciding {
            policy,
            verifier,
            credentials,
            settings,
        }
    }

    /// A webhook deciding with them.
    fn webhook(&self) -> Webhook {
        Webhook::new(
            self.policy.clone(),
            self.verifier.clone(),
            self.credentials.clone(),
            self.settings,
        )
    }
}

/// Starts the check of the running workloads, which acts while `leading` says this replica
/// holds the lease. They are decided as admissions are, through the same caches.
fn start_running_check(
    args: &RunArgs,
    client: &kube::Client,
    deciding: &Deciding,
    leading: watch::Receiver<bool>,
    metrics: &Metrics,
) {
    let mut unchecked = args.scope.namespaces.clone();
    unchecked.push(args.namespace.clone());
    let settings = RunningSettings {
        resync: args.resync_period,
        rate: args.running_check_rate,
        limits: crate::audit::Limits {
            concurrency: usize::try_from(args.running_check_concurrency).unwrap_or(1),
            timeout: args.running_check_timeout,
        },
        unchecked,
        metrics: metrics.clone(),
    };
    tokio::spawn(crate::controller::running::run(
        client.clone(),
        deciding.webhook(),
        deciding.policy.clone(),
        leading,
        settings,
    ));
}

/// The webhook's routes; with `--events`, also starts the publisher of their Events, the
/// only task that talks to the API server about them (admission only queues).
fn routes(args: &RunArgs, client: kube::Client, deciding: &Deciding, metrics: &Metrics) -> Routes {
    let webhook = deciding.webhook().with_pinning(args.pin_digests);
    let routes = Routes::new(webhook, metrics.clone());
    if !args.events {
        return routes;
    }
    let (sink, records) = EventSink::new(QUEUE_CAPACITY, metrics.clone());
    let instance = crate::controller::lease::identity();
    let publisher = crate::webhook::events::publish(client, instance, records, metrics.clone());
    tokio::spawn(publisher);
    routes.with_events(sink)
}

/// Shutdown in two steps: `stopping` at SIGTERM (not ready, the lease released, admissions
/// still served), `draining` after --shutdown-delay (the listeners close).
struct Shutdown {
    stopping: watch::Sender<bool>,
    draining: watch::Sender<bool>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Shutdown {
            stopping: watch::channel(false).0,
            draining: watch::channel(false).0,
        }
    }
}

impl Shutdown {
    fn stop(&self) {
        self.stopping.send_replace(true);
    }

    fn drain(&self) {
        self.draining.send_replace(true);
    }

    /// Resolves once [`Shutdown::stop`] is called.
    fn stopping(&self) -> impl Future<Output = ()> + use<> {
        Self::once(self.stopping.subscribe())
    }

    /// Resolves once [`Shutdown::drain`] is called.
    fn draining(&self) -> impl Future<Output = ()> + use<> {
        Self::once(self.draining.subscribe())
    }

    async fn once(mut rx: watch::Receiver<bool>) {
        let _ = rx.wait_for(|set| *set).await;
    }
}

/// The serving certificate and what goes with it.
struct Serving {
    source: CertSource,
    /// Records the expiry of each certificate served, whatever its source.
    observer: CertObserver,
    /// For a managed certificate: turns true once one is served.
    ready: Option<watch::Receiver<bool>>,
}

/// The serving certificate: files, or a Secret this process manages (its manager started
/// here, writing while `leading` says this replica holds the lease).
fn serving_certificate(
    args: &RunArgs,
    client: &kube::Client,
    settings: Option<crate::certs::CertSettings>,
    metrics: &Metrics,
    leading: watch::Receiver<bool>,
) -> anyhow::Result<Serving> {
    let observer = {
        let metrics = metrics.clone();
        CertObserver::new(move |leaf| {
            if let Ok(info) = crate::certs::issue::read_der(leaf) {
                metrics.serving_certificate(info.not_after);
            }
        })
    };
    let Some(settings) = settings else {
        let (Some(cert_file), Some(key_file)) = (&args.tls_cert_file, &args.tls_key_file) else {
            anyhow::bail!("--tls-cert-file and --tls-key-file, or --tls-secret, are needed");
        };
        let source = CertSource::Files {
            cert_file: cert_file.clone(),
            key_file: key_file.clone(),
        };
        return Ok(Serving {
            source,
            observer,
            ready: None,
        });
    };
    let provided = Arc::new(ProvidedCert::with_observer(observer.clone()));
    let (ready_tx, ready_rx) = watch::channel(false);
    tokio::spawn(manage(
        client.clone(),
        settings,
        Arc::clone(&provided),
        leading,
        ready_tx,
    ));
    Ok(Serving {
        source: CertSource::Provided(provided),
        observer,
        ready: Some(ready_rx),
    })
}

/// Ready once the serving certificate is there (`certificate`, when managed) and the
/// controller has said whether a policy exists. A certificate manager that ended without
/// serving never makes this ready.
async fn track_readiness(
    mut state: watch::Receiver<PolicyState>,
    readiness: Readiness,
    metrics: Metrics,
    certificate: Option<watch::Receiver<bool>>,
) {
    if let Some(mut ready) = certificate
        && ready.wait_for(|ready| *ready).await.is_err()
    {
        return;
    }
    loop {
        let (ready, keys, patterns) = {
            let state = state.borrow_and_update();
            let counts = state
                .enforced()
                .map_or((0, 0), |s| (s.keys().len(), s.entries().len()));
            (!matches!(*state, PolicyState::Loading), counts.0, counts.1)
        };
        if ready {
            readiness.set_ready();
        }
        metrics.policy(ready, keys, patterns);
        if state.changed().await.is_err() {
            return;
        }
    }
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => return std::future::pending().await,
            };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
