//! [`LiveServer`]: the live view's HTTP server, actix-web in the run's actix system. Its routes
//! are one [`configure`] function, so that more (a dashboard page, control endpoints) are added
//! in one place; every handler asks the [`LiveView`] actor and encodes its answer.

use std::net::SocketAddr;

use actix::Addr;
use actix_web::dev::ServerHandle;
use actix_web::http::header;
use actix_web::{web, App, HttpResponse, HttpServer};
use serde::Deserialize;

use super::{
    DescribeGroup, DescribeSensor, DescribeTree, Follow, ListAnomalies, ListEvents, ListRounds, LiveView,
    RenderMetrics, Summarise, CONTENT_TYPE,
};

/// The dashboard: one self-contained page (its script and style inline, nothing fetched from
/// elsewhere), built into the binary.
pub const DASHBOARD: &str = include_str!("dashboard.html");

/// Sensors listed per page of `/api/groups/{name}` unless `limit` says otherwise.
pub const DEFAULT_PAGE: usize = 1_000;

/// The most sensors one page of `/api/groups/{name}` lists.
pub const MAX_PAGE: usize = 10_000;

/// The server's worker threads: one is plenty for a few scrapers and browsers, and every
/// request is answered by the one `LiveView` actor anyway.
const WORKERS: usize = 1;

/// Seconds a graceful stop waits for requests in flight.
const SHUTDOWN_SECONDS: u64 = 1;

/// A running live view server.
#[derive(Debug)]
pub struct LiveServer {
    /// The address it listens on (the port chosen, when port 0 was asked for).
    address: SocketAddr,
    /// Stops the server; [`LiveServer::stop`] uses it.
    handle: ServerHandle,
}

impl LiveServer {
    /// Listens on `address` and serves `live`'s view. Must be called inside an actix system;
    /// the server runs on it (its accept loop and its worker on threads of their own) until
    /// [`LiveServer::stop`]. A bind failure (address in use, not this machine's, no
    /// permission) is returned before anything starts.
    pub fn bind(address: SocketAddr, live: Addr<LiveView>) -> std::io::Result<LiveServer> {
        let live = web::Data::new(live);
        let server = HttpServer::new(move || App::new().app_data(live.clone()).configure(configure))
            .workers(WORKERS)
            .disable_signals()
            .shutdown_timeout(SHUTDOWN_SECONDS)
            .bind(address)?;
        let address = server.addrs().first().copied().unwrap_or(address);
        let server = server.run();
        let handle = server.handle();
        actix_rt::spawn(server);
        Ok(LiveServer { address, handle })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.address
    }

    /// Stops accepting, lets requests in flight finish (at most a second), and stops.
    pub async fn stop(self) {
        self.handle.stop(true).await;
    }
}

/// The live view's routes (the app must hold a `web::Data<Addr<LiveView>>`):
/// the dashboard at `/`, `/metrics`, `/api/tree`, `/api/groups/{name}`, `/api/sensors/{id}`,
/// `/api/events`, `/api/rounds`, `/api/anomalies`, `/api/summary`, `/api/stream`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(dashboard))
        .route("/metrics", web::get().to(metrics))
        .route("/api/tree", web::get().to(tree))
        .route("/api/groups/{name}", web::get().to(group))
        .route("/api/sensors/{id}", web::get().to(sensor))
        .route("/api/events", web::get().to(events))
        .route("/api/rounds", web::get().to(rounds))
        .route("/api/anomalies", web::get().to(anomalies))
        .route("/api/summary", web::get().to(summary))
        .route("/api/stream", web::get().to(stream));
}

type Live = web::Data<Addr<LiveView>>;

/// The actor has stopped (the system is going down).
fn unavailable() -> HttpResponse {
    HttpResponse::ServiceUnavailable().body("the live view has stopped\n")
}

fn not_found(what: &str) -> HttpResponse {
    HttpResponse::NotFound().json(serde_json::json!({ "error": what }))
}

async fn dashboard() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(DASHBOARD)
}

async fn rounds(live: Live) -> HttpResponse {
    match live.send(ListRounds).await {
        Ok(rounds) => HttpResponse::Ok().json(rounds),
        Err(_) => unavailable(),
    }
}

async fn anomalies(live: Live) -> HttpResponse {
    match live.send(ListAnomalies).await {
        Ok(anomalies) => HttpResponse::Ok().json(anomalies),
        Err(_) => unavailable(),
    }
}

async fn metrics(live: Live) -> HttpResponse {
    match live.send(RenderMetrics).await {
        Ok(text) => HttpResponse::Ok().content_type(CONTENT_TYPE).body(text),
        Err(_) => unavailable(),
    }
}

async fn tree(live: Live) -> HttpResponse {
    match live.send(DescribeTree).await {
        Ok(tree) => HttpResponse::Ok().json(tree),
        Err(_) => unavailable(),
    }
}

#[derive(Deserialize)]
struct Page {
    offset: Option<usize>,
    limit: Option<usize>,
}

async fn group(live: Live, name: web::Path<String>, page: web::Query<Page>) -> HttpResponse {
    let query = DescribeGroup {
        name: name.into_inner(),
        offset: page.offset.unwrap_or(0),
        limit: page.limit.unwrap_or(DEFAULT_PAGE).min(MAX_PAGE),
    };
    match live.send(query).await {
        Ok(Some(group)) => HttpResponse::Ok().json(group),
        Ok(None) => not_found("no such group"),
        Err(_) => unavailable(),
    }
}

async fn sensor(live: Live, id: web::Path<String>) -> HttpResponse {
    match live.send(DescribeSensor { id: id.into_inner() }).await {
        Ok(Some(sensor)) => HttpResponse::Ok().json(sensor),
        Ok(None) => not_found("no such sensor"),
        Err(_) => unavailable(),
    }
}

#[derive(Deserialize)]
struct Since {
    since: Option<u64>,
}

async fn events(live: Live, since: web::Query<Since>) -> HttpResponse {
    match live
        .send(ListEvents {
            since: since.since.unwrap_or(0),
        })
        .await
    {
        Ok(events) => HttpResponse::Ok().json(events),
        Err(_) => unavailable(),
    }
}

async fn summary(live: Live) -> HttpResponse {
    match live.send(Summarise).await {
        Ok(run) => HttpResponse::Ok().json(run),
        Err(_) => unavailable(),
    }
}

async fn stream(live: Live) -> HttpResponse {
    let receiver = match live.send(Follow).await {
        Ok(Some(receiver)) => receiver,
        Ok(None) => return HttpResponse::Gone().json(serde_json::json!({ "error": "the run has ended" })),
        Err(_) => return unavailable(),
    };
    let frames = futures::stream::unfold(receiver, |mut receiver| async move {
        let frame = receiver.recv().await?;
        Some((Ok::<_, std::convert::Infallible>(frame), receiver))
    });
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .streaming(frames)
}
