//! [`LiveServer`]: the live view's HTTP server, actix-web in the run's actix system. Its routes
//! are one [`configure`] function, so that more (a dashboard page, control endpoints) are added
//! in one place; every handler asks the [`LiveView`] actor and encodes its answer.

use std::net::SocketAddr;

use actix::Addr;
use actix_web::dev::ServerHandle;
use actix_web::http::header;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use serde::Deserialize;

use crate::control::{Control, ControlError};

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
        Self::start(address, live, None)
    }

    /// [`LiveServer::bind`] with the control endpoints on: requests that carry `token`
    /// (`Authorization: Bearer <token>`) restart, stop, add and remove sensors through
    /// `control`, each journaled `requested by live view`.
    pub fn bind_with_controls(
        address: SocketAddr,
        live: Addr<LiveView>,
        control: Control,
        token: String,
    ) -> std::io::Result<LiveServer> {
        Self::start(address, live, Some(Controls { control, token }))
    }

    fn start(address: SocketAddr, live: Addr<LiveView>, controls: Option<Controls>) -> std::io::Result<LiveServer> {
        let live = web::Data::new(live);
        let controls = web::Data::new(controls);
        let server = HttpServer::new(move || {
            App::new()
                .app_data(live.clone())
                .app_data(controls.clone())
                .configure(configure)
        })
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

/// The control endpoints' access: the run's [`Control`] and the token requests must carry.
struct Controls {
    control: Control,
    token: String,
}

/// The journal's requester of every control request.
pub const REQUESTER: &str = "live view";

/// The live view's routes (the app must hold a `web::Data<Addr<LiveView>>`, and for the control
/// endpoints a `web::Data<Option<Controls>>`):
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
        .route("/api/stream", web::get().to(stream))
        .route("/api/controls", web::get().to(controls))
        .route("/api/sensors", web::post().to(add))
        .route("/api/sensors/{id}", web::delete().to(remove))
        .route("/api/sensors/{id}/restart", web::post().to(restart))
        .route("/api/sensors/{id}/stop", web::post().to(stop));
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

/// The controls, when the app holds them (an app of the user's that uses [`configure`] without
/// them has the control endpoints off).
type Access = Option<web::Data<Option<Controls>>>;

/// Whether two byte strings are equal, in a time that depends on their lengths only.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

/// The run's control if the request may use it; else the response that says why not: 403 when
/// the controls are off, 401 without the right token.
fn authorise<'a>(access: &'a Access, request: &HttpRequest) -> Result<&'a Control, Box<HttpResponse>> {
    let Some(controls) = access.as_ref().and_then(|a| a.get_ref().as_ref()) else {
        let off = "the controls are off: start the run with --http-control (or [http] control = true)";
        return Err(Box::new(
            HttpResponse::Forbidden().json(serde_json::json!({ "error": off })),
        ));
    };
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match given {
        Some(token) if same(token.as_bytes(), controls.token.as_bytes()) => Ok(&controls.control),
        _ => Err(Box::new(
            HttpResponse::Unauthorized()
                .insert_header((header::WWW_AUTHENTICATE, "Bearer"))
                .json(serde_json::json!({ "error": "expected the header Authorization: Bearer <token>" })),
        )),
    }
}

/// A refused request: 404 for an unknown sensor, 400 for an entry that is not valid, 409 when
/// the run or the sensor cannot take it now.
fn refused(e: ControlError) -> HttpResponse {
    let body = serde_json::json!({ "error": e.to_string() });
    match e {
        ControlError::UnknownSensor { .. } => HttpResponse::NotFound().json(body),
        ControlError::Invalid(_) | ControlError::Duplicate { .. } => HttpResponse::BadRequest().json(body),
        _ => HttpResponse::Conflict().json(body),
    }
}

async fn controls(access: Access) -> HttpResponse {
    let enabled = access.as_ref().is_some_and(|a| a.is_some());
    HttpResponse::Ok().json(serde_json::json!({ "enabled": enabled }))
}

async fn restart(access: Access, request: HttpRequest, id: web::Path<String>) -> HttpResponse {
    let control = match authorise(&access, &request) {
        Ok(control) => control,
        Err(response) => return *response,
    };
    match control.restart(REQUESTER, &id).await {
        Ok(()) => HttpResponse::Ok().json(serde_json::json!({ "sensor": *id, "done": "restarted" })),
        Err(e) => refused(e),
    }
}

async fn stop(access: Access, request: HttpRequest, id: web::Path<String>) -> HttpResponse {
    let control = match authorise(&access, &request) {
        Ok(control) => control,
        Err(response) => return *response,
    };
    match control.stop(REQUESTER, &id).await {
        Ok(()) => HttpResponse::Ok().json(serde_json::json!({ "sensor": *id, "done": "stopped" })),
        Err(e) => refused(e),
    }
}

async fn remove(access: Access, request: HttpRequest, id: web::Path<String>) -> HttpResponse {
    let control = match authorise(&access, &request) {
        Ok(control) => control,
        Err(response) => return *response,
    };
    match control.remove(REQUESTER, &id).await {
        Ok(removed) => HttpResponse::Ok().json(serde_json::json!({
            "sensor": &*removed.sensor, "done": "removed", "last_round": removed.last_round
        })),
        Err(e) => refused(e),
    }
}

/// The body: one `[[sensors]]` entry's keys, as TOML text.
async fn add(access: Access, request: HttpRequest, body: String) -> HttpResponse {
    let control = match authorise(&access, &request) {
        Ok(control) => control,
        Err(response) => return *response,
    };
    match control.add_toml(REQUESTER, &body).await {
        Ok(added) => HttpResponse::Ok().json(serde_json::json!({
            "sensors": added.sensors.iter().map(|s| &**s).collect::<Vec<_>>(),
            "done": "added",
            "first_round": added.first_round
        })),
        Err(e) => refused(e),
    }
}
