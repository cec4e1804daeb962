//! Builds the application from settings and runs it until stopped.

use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::{NormalizePath, TrailingSlash};
use actix_web::{App, web};

use crate::config::{ServerSettings, Settings, StoreKind};
use crate::domain::Tenants;
use crate::idempotency::memory::MemoryStore;
use crate::idempotency::redis::{RedisOptions, RedisStore};
use crate::idempotency::{Idempotency, IdempotencySettings, Store};
use crate::pms::PmsRegistry;
use crate::routes;

/// Everything a request handler needs, shared by all workers.
pub struct AppState {
    pub server: ServerSettings,
    pub tenants: Tenants,
    pub pms: PmsRegistry,
    pub idempotency: Idempotency,
    /// Every accepted charge until it is on a folio or an operator's list.
    pub journal: crate::journal::Journal,
    /// `revenue_posting = "daily"`: receipts' revenue waiting for its summary.
    pub revenue_ledger: crate::daily_revenue::Ledger,
    /// The operator API and console (`/admin`), off without a token.
    pub admin: crate::admin::AdminAccess,
    /// Guest searches: coalesced per tenant and term, answers cached briefly.
    pub search: crate::guest_search::GuestSearch,
    /// Set on SIGTERM/SIGINT: `/readyz` fails so load balancers stop sending.
    pub draining: AtomicBool,
    /// `[capture] dir`: deliveries written as replay fixtures.
    pub capture: Option<crate::capture::CaptureWriter>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("{0}")]
    Other(String),
}

pub struct Application {
    port: u16,
    server: Server,
    state: web::Data<AppState>,
    accept_unsafe_redis: bool,
    worker: crate::worker::WorkerSettings,
    shutdown_grace: std::time::Duration,
    drain_delay: std::time::Duration,
}

impl Application {
    /// Binds the listener (port 0 picks a free one) and prepares every part.
    pub fn build(settings: Settings) -> Result<Application, StartupError> {
        let listener =
            TcpListener::bind(&settings.server.listen).map_err(|source| StartupError::Bind {
                addr: settings.server.listen.clone(),
                source,
            })?;
        let port = listener
            .local_addr()
            .map_err(|e| StartupError::Other(e.to_string()))?
            .port();

        // One URL and one set of options for records, journal and revenue
        // ledger, which share one store (and so its connections).
        let redis = match settings.idempotency.store {
            StoreKind::Memory => None,
            StoreKind::Redis => Some((
                settings
                    .idempotency
                    .redis_url()
                    .map_err(StartupError::Other)?,
                RedisOptions::from_settings(&settings.idempotency)
                    .map_err(|e| StartupError::Other(e.0))?,
            )),
        };
        let other = |e: crate::idempotency::StoreError| StartupError::Other(e.0);
        let retention = settings.journal.retention;
        let (store, journal, revenue_ledger) = match &redis {
            None => (
                Store::Memory(MemoryStore::new(settings.idempotency.memory_capacity)),
                crate::journal::Journal::Memory(crate::journal::memory::MemoryJournal::new(
                    retention,
                    settings.idempotency.memory_capacity,
                )),
                crate::daily_revenue::Ledger::Memory(crate::daily_revenue::MemoryLedger::default()),
            ),
            Some((url, options)) => {
                // One store for records, journal and ledger, with a connection per
                // thread: the writes a delivery sends together go out on one
                // socket, driven by the thread that serves the delivery.
                let redis = std::sync::Arc::new(
                    RedisStore::with_options(url, options)
                        .map_err(other)?
                        .per_thread_connections(),
                );
                let journal = crate::journal::redis::RedisJournal::on(redis.clone(), retention);
                let journal = match &settings.journal.spool_dir {
                    Some(dir) => journal.with_spool(
                        crate::journal::spool::Spool::open(dir).map_err(StartupError::Other)?,
                    ),
                    None => journal,
                };
                (
                    Store::Redis(redis.clone()),
                    crate::journal::Journal::Redis(Box::new(journal)),
                    crate::daily_revenue::Ledger::Redis(Box::new(
                        crate::daily_revenue::RedisLedger::on(redis, retention),
                    )),
                )
            }
        };
        let pms = PmsRegistry::build(&settings.pms).map_err(StartupError::Other)?;
        let tenants = Tenants::build(&settings.tenants, &pms)?;
        if tenants.is_empty() {
            tracing::warn!("no tenants configured: every charge will be answered 401");
        }
        if let Some(demo) = tenants.find_by_key(crate::config::DEMO_API_KEY) {
            tracing::warn!(
                tenant = %demo.id,
                pms = demo.pms.kind(),
                "DEMO TENANT LIVE: tenant `{}` accepts the public example API key from \
                 Lightspeed's documentation; anyone can post charges to it. Run with \
                 --config FILE and a key of your own for a real hotel",
                demo.id
            );
        }
        let idempotency = Idempotency::new(
            store,
            IdempotencySettings {
                lease: settings.idempotency.lease,
                in_flight_wait: settings.idempotency.in_flight_wait,
                retention: settings.idempotency.retention,
                reconcile_new_keys: settings.idempotency.reconcile_new_keys,
            },
        );
        crate::metrics::handle();
        let capture = match &settings.capture {
            Some(c) => {
                let writer = crate::capture::CaptureWriter::start(c, settings.server.body_limit)
                    .map_err(|e| StartupError::Other(format!("capture.dir {}: {e}", c.dir)))?;
                tracing::warn!(dir = %c.dir, "capturing every charge delivery (API keys redacted; guest data kept)");
                Some(writer)
            }
            None => None,
        };
        let state = web::Data::new(AppState {
            server: settings.server.clone(),
            tenants,
            pms,
            idempotency,
            journal,
            revenue_ledger,
            admin: crate::admin::AdminAccess::new(
                settings
                    .admin
                    .resolve_token()?
                    .as_ref()
                    .map(secrecy::ExposeSecret::expose_secret),
            ),
            search: crate::guest_search::GuestSearch::new(settings.server.search_cache),
            draining: AtomicBool::new(false),
            capture,
        });

        let server = serve(listener, &settings.server, state.clone())
            .map_err(|e| StartupError::Other(e.to_string()))?;

        if settings.idempotency.store == StoreKind::Memory && !is_loopback(&settings.server.listen)
        {
            tracing::warn!(
                "the memory idempotency store serves one process only; run several replicas with store = \"redis\""
            );
        }
        Ok(Application {
            port,
            server,
            state,
            accept_unsafe_redis: settings.idempotency.accept_unsafe_redis,
            worker: crate::worker::WorkerSettings {
                poll_interval: settings.journal.poll_interval,
                retention: settings.journal.retention,
                give_up_after: settings.journal.give_up_after,
                lease: settings.idempotency.lease,
            },
            shutdown_grace: settings.server.shutdown_grace,
            drain_delay: settings.server.drain_delay,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn state(&self) -> Arc<AppState> {
        self.state.clone().into_inner()
    }

    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until SIGTERM/SIGINT (or `handle().stop`), then drains in-flight
    /// requests for up to `shutdown_grace`.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        if let Store::Redis(redis) = self.state.idempotency.store() {
            check_redis_safety(redis, self.accept_unsafe_redis).await;
        }
        let handle = self.server.handle();
        let state = self.state.clone();
        let drain_delay = self.drain_delay;
        tokio::spawn(async move {
            wait_for_signal().await;
            state.draining.store(true, Ordering::SeqCst);
            if !drain_delay.is_zero() {
                tracing::info!(
                    ?drain_delay,
                    "shutdown requested: /readyz answers 503, still serving until the delay ends"
                );
                tokio::select! {
                    _ = tokio::time::sleep(drain_delay) => {},
                    _ = wait_for_signal() => tracing::info!("second signal: closing now"),
                }
            }
            tracing::info!("closing the listener: draining in-flight requests");
            handle.stop(true).await;
        });
        crate::worker::register_metrics(&self.state);
        let worker = tokio::spawn(crate::worker::run(
            self.state.clone().into_inner(),
            self.worker,
        ));
        let served = self.server.await;
        // The server stops on a signal or `handle().stop`: the worker stops
        // taking entries and settles the ones it holds.
        self.state.draining.store(true, Ordering::SeqCst);
        if tokio::time::timeout(self.shutdown_grace, worker)
            .await
            .is_err()
        {
            tracing::warn!(
                "journal worker still busy at the end of shutdown_grace; its leases expire"
            );
        }
        served
    }
}

/// The HTTP/1.1 server: what `actix_web::HttpServer` builds, with each
/// connection wrapped so the parser's own bodiless errors leave as JSON
/// (see `wire_errors`).
fn serve(
    listener: TcpListener,
    server: &ServerSettings,
    state: web::Data<AppState>,
) -> std::io::Result<Server> {
    use actix_http::HttpService;
    use actix_service::{IntoServiceFactory, ServiceFactoryExt, fn_service, map_config};
    use actix_web::dev::AppConfig;

    let builder = actix_server::Server::build();
    let shutdown = builder.graceful_shutdown_signal();
    let request_timeout = server.client_request_timeout;
    let mut builder = builder
        .shutdown_timeout(server.shutdown_grace.as_secs().max(1))
        .max_concurrent_connections(server.max_connections)
        .disable_signals();
    if let Some(workers) = server.workers {
        builder = builder.workers(workers.max(1));
    }
    let builder = builder.listen("chargebridge", listener, move || {
        let state = state.clone();
        let shutdown = shutdown.clone();
        let app = App::new()
            .app_data(state)
            .app_data(routes::query_config())
            .wrap(NormalizePath::new(TrailingSlash::Trim))
            .configure(crate::admin::configure)
            .configure(routes::configure)
            .into_factory()
            .map_err(|e: actix_web::Error| e.error_response());
        let http = HttpService::build()
            // Idle keep-alive connections close at once when shutdown starts.
            .graceful_shutdown_signal(move || {
                let shutdown = shutdown.clone();
                async move { shutdown.notified().await }
            })
            .client_request_timeout(request_timeout)
            .client_disconnect_timeout(std::time::Duration::from_secs(1))
            .h1(map_config(app, |_| AppConfig::default()));
        fn_service(move |io: actix_rt::net::TcpStream| {
            let peer = io.peer_addr().ok();
            let _ = io.set_nodelay(true);
            std::future::ready(Ok((
                crate::wire_errors::JsonErrors::new(io, request_timeout),
                peer,
            )))
        })
        .and_then(http)
    })?;
    Ok(builder.run())
}

async fn check_redis_safety(redis: &RedisStore, accepted: bool) {
    match redis.safety_report().await {
        Ok(report) => {
            for problem in report.problems() {
                if accepted {
                    tracing::info!(%problem, "redis durability (accepted by configuration)");
                } else {
                    tracing::warn!(%problem, "redis durability: lost records can mean double charges");
                }
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "redis not reachable at start-up; charges answer 500 until it is")
        }
    }
}

fn is_loopback(listen: &str) -> bool {
    listen
        .parse::<std::net::SocketAddr>()
        .map(|a| a.ip().is_loopback())
        .unwrap_or(listen.starts_with("localhost"))
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {},
                    _ = int.recv() => {},
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
