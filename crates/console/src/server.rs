//! The HTTP side: routes, logins, the live streams. Pages come from [`crate::pages`], the
//! forecourt's state from [`crate::forecourt`], who may do what from [`crate::auth`].

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::extract::{ConnectInfo, DefaultBodyLimit, Form, Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use axum::{Json, Router};
use forecourt_events::{now_millis, FpNumber, FramePlates, UnixMillis};
use serde::Deserialize;
use station::crops::PlateCrops;
use station::evidence::{CropRole, EvidenceStore};
use station::health::LocalHealth;
use station::live::LiveRecord;
use station::plate_notes::PlateNotes;
use station::snapshots::Snapshots;
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::{Stream, StreamExt};
use tracing::{info, warn};

use crate::audit::{AuditAction, AuditEntry, AuditLog};
use crate::auth::{self, LoginLimiter, Session, Sessions};
use crate::forecourt::{ApiEvent, Forecourt};
use crate::pages;
use crate::settings::{ConsoleSettings, Role, SettingsError, UserSettings};
use crate::tls::{self, TlsError, TlsListener};
use crate::zone_file::{ZoneFile, ZoneFileError};

const SESSION_COOKIE: &str = "fa_session";
const LOGIN_CSRF_COOKIE: &str = "fa_login_csrf";
/// Forms and API requests are small; anything larger is refused before it is read.
const BODY_LIMIT: usize = 16 * 1024;
/// API events a slow client may fall behind by before it is told to fetch the state anew.
const EVENT_BACKLOG: usize = 1024;
/// How long a correction waits for the station's answer.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

/// What the console shows, from the rest of the agent.
pub struct ConsoleFeeds {
    /// Every record as the station decides it.
    pub records: broadcast::Receiver<LiveRecord>,
    /// The latest health report.
    pub health: watch::Receiver<Option<LocalHealth>>,
    /// The fuelling points the config lists (a tile each from the start).
    pub fps: Vec<FpNumber>,
    pub station_id: String,
    /// The station's command queue: staff corrections and reloads go there.
    pub commands: mpsc::Sender<uplink::CommandRequest>,
    pub audit: AuditLog,
    /// The config's cameras, by name.
    pub cameras: Vec<String>,
    /// Each camera's latest picture (the reader keeps them while this is on).
    pub snapshots: Snapshots,
    /// The zones in the config file.
    pub zones: Arc<dyn ZoneFile>,
    /// HQ's notes on plates, shown with the arrivals.
    pub plate_notes: watch::Receiver<Arc<PlateNotes>>,
    /// Frames with plate reads as the station takes them, for the installer's page.
    pub reads: broadcast::Sender<Arc<FramePlates>>,
    /// The closed hours' summaries the station holds, for the analytics page.
    pub closed_hours: watch::Receiver<Arc<Vec<wire::HourSummary>>>,
    /// The best crop of each plate read lately (the car at each pump's tile).
    pub crops: PlateCrops,
    /// The crops behind each sale's verdict; `None`: none kept.
    pub evidence: Option<EvidenceStore>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error("[console]: {0}")]
    Settings(#[from] SettingsError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("[console]: {0}")]
    Tls(#[from] TlsError),
    #[error("serving the console: {0}")]
    Serve(#[source] std::io::Error),
}

/// The console, bound to its address (so that a taken port is an error at start).
pub struct Console {
    listener: TcpListener,
    settings: ConsoleSettings,
    /// HTTPS; `None`: plain HTTP.
    tls: Option<Arc<rustls::ServerConfig>>,
}

impl Console {
    pub async fn bind(settings: ConsoleSettings) -> Result<Console, ConsoleError> {
        if let Some(problem) = settings.problems().into_iter().next() {
            return Err(problem.into());
        }
        let tls = match settings.tls_files() {
            Some((cert, key)) => Some(tls::server_config(cert, key)?),
            None => None,
        };
        let addr = settings.listen_addr()?;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ConsoleError::Listen { addr, source })?;
        Ok(Console {
            listener,
            settings,
            tls,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` turns true.
    pub async fn run(
        self,
        feeds: ConsoleFeeds,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<(), ConsoleError> {
        let (events, _) = broadcast::channel(EVENT_BACKLOG);
        let state = Arc::new(AppState {
            users: self
                .settings
                .users
                .iter()
                .map(|u| (u.name.clone(), u.clone()))
                .collect(),
            token_hashes: self
                .settings
                .api_tokens
                .iter()
                .map(|t| (t.sha256.clone(), t.name.clone()))
                .collect(),
            session_ms: (self.settings.session_hours * 3_600_000.0) as i64,
            sessions: Mutex::new(Sessions::default()),
            limiter: Mutex::new(LoginLimiter::default()),
            forecourt: Mutex::new(Forecourt::with_fps(feeds.fps)),
            events: events.clone(),
            health: feeds.health,
            station_id: feeds.station_id,
            commands: feeds.commands,
            audit: feeds.audit,
            cameras: feeds.cameras,
            snapshots: feeds.snapshots,
            zones: feeds.zones,
            plate_notes: feeds.plate_notes,
            reads: feeds.reads,
            closed_hours: feeds.closed_hours,
            crops: feeds.crops,
            evidence: feeds.evidence,
            utc_offset_ms: (self.settings.utc_offset_hours * 3_600_000.0) as i64,
            https: self.tls.is_some(),
        });
        let follower = tokio::spawn(follow_records(
            feeds.records,
            state.clone(),
            shutdown.clone(),
        ));
        let addr = self.local_addr().map_err(ConsoleError::Serve)?;
        let https = self.tls.is_some();
        info!(%addr, https, users = state.users.len(), api_tokens = state.token_hashes.len(), "console listening");
        let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
        let stop = async move {
            let _ = shutdown.wait_for(|stop| *stop).await;
        };
        let served = match self.tls {
            None => {
                axum::serve(self.listener, app)
                    .with_graceful_shutdown(stop)
                    .await
            }
            // `tap_io`: the remote address as connect info, as for plain TCP.
            Some(config) => {
                let listener = TlsListener::new(self.listener, config)
                    .map_err(ConsoleError::Serve)?
                    .tap_io(|_| ());
                axum::serve(listener, app)
                    .with_graceful_shutdown(stop)
                    .await
            }
        }
        .map_err(ConsoleError::Serve);
        follower.abort();
        served
    }
}

struct AppState {
    users: HashMap<String, UserSettings>,
    /// SHA-256 (hex) -> the token's name.
    token_hashes: HashMap<String, String>,
    session_ms: i64,
    sessions: Mutex<Sessions>,
    limiter: Mutex<LoginLimiter>,
    forecourt: Mutex<Forecourt>,
    events: broadcast::Sender<Decided>,
    health: watch::Receiver<Option<LocalHealth>>,
    station_id: String,
    commands: mpsc::Sender<uplink::CommandRequest>,
    audit: AuditLog,
    cameras: Vec<String>,
    snapshots: Snapshots,
    zones: Arc<dyn ZoneFile>,
    plate_notes: watch::Receiver<Arc<PlateNotes>>,
    reads: broadcast::Sender<Arc<FramePlates>>,
    closed_hours: watch::Receiver<Arc<Vec<wire::HourSummary>>>,
    crops: PlateCrops,
    evidence: Option<EvidenceStore>,
    utc_offset_ms: i64,
    /// Served over TLS: cookies are `Secure`.
    https: bool,
}

/// An API event and when the station decided the record behind it.
#[derive(Debug, Clone)]
struct Decided {
    decided_t: UnixMillis,
    event: ApiEvent,
}

/// A lock that a panicked holder left usable: each state is whole between statements.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

type Shared = Arc<AppState>;

fn router(state: Shared) -> Router {
    Router::new()
        .route("/", get(forecourt_page))
        .route("/health", get(health_page))
        .route("/analytics", get(analytics_page))
        .route("/arrivals", get(arrivals_page))
        .route("/api/arrivals", get(api_arrivals))
        .route("/sales", get(sales_page))
        .route("/sales/correct", post(correct_sale))
        .route("/sales/{sale_id}/crop/{role}", get(sale_crop))
        .route("/crops/plate/{plate}", get(plate_crop))
        .route("/installer", get(installer_page))
        .route("/installer/snapshot/{camera}", get(installer_snapshot))
        .route("/installer/zones", get(installer_zones).post(save_zones))
        .route("/installer/reads", get(installer_reads))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/live", get(live_stream))
        .route("/api/fps", get(api_fps))
        .route("/api/events", get(api_events))
        .route("/assets/console.css", get(css))
        .route("/assets/console.js", get(js))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(middleware::from_fn(security_headers))
        .with_state(state)
}

/// The records the station decides, applied to the tiles and passed on as API events.
async fn follow_records(
    mut records: broadcast::Receiver<LiveRecord>,
    state: Shared,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut reads = state.reads.subscribe();
    loop {
        let record = tokio::select! {
            r = records.recv() => r,
            Ok(frame) = reads.recv() => {
                // When each car on a tile was last read (a lagging receiver skips frames).
                let events = lock(&state.forecourt).observe_reads(&frame);
                for event in events {
                    let _ = state.events.send(Decided {
                        decided_t: frame.t,
                        event,
                    });
                }
                continue;
            }
            _ = shutdown.wait_for(|stop| *stop) => return,
        };
        match record {
            Ok(record) => {
                let notes = state.plate_notes.borrow().clone();
                let applied = {
                    let mut forecourt = lock(&state.forecourt);
                    forecourt.set_plate_notes(notes);
                    forecourt.apply(record.stream, &record.body, record.id)
                };
                match applied {
                    Ok(events) => {
                        for event in events {
                            let _ = state.events.send(Decided {
                                decided_t: record.decided_t,
                                event,
                            });
                        }
                    }
                    Err(e) => warn!(error = %e, "console: a record it cannot show"),
                }
            }
            Err(broadcast::error::RecvError::Lagged(n)) => {
                warn!(missed = n, "console fell behind the station's records; tiles may lag until the next record of each fuelling point");
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    for (name, value) in [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        ),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        // Plates are personal data: never kept by a browser or a proxy.
        (header::CACHE_CONTROL, "no-store"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// `name`'s value in the request's cookies.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The cookies' `Secure` attribute, over HTTPS only.
fn secure_attribute(https: bool) -> &'static str {
    if https {
        "; Secure"
    } else {
        ""
    }
}

fn session_cookie(value: &str, max_age_s: i64, https: bool) -> HeaderValue {
    // `Secure` over HTTPS only: on plain HTTP (loopback by default) the browser would not send
    // the cookie back. HttpOnly: no script reads it; SameSite=Strict: no other site makes the
    // browser send it.
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={value}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age_s}{}",
        secure_attribute(https)
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("fa_session=; Max-Age=0"))
}

/// The logged-in session of a request, if any.
fn session_of(state: &AppState, headers: &HeaderMap, now: UnixMillis) -> Option<Session> {
    let id = cookie(headers, SESSION_COOKIE)?;
    lock(&state.sessions).get(id, now).cloned()
}

/// The page's session, or the way to the login page.
fn logged_in(state: &AppState, headers: &HeaderMap) -> Result<Session, Response> {
    session_of(state, headers, now_millis()).ok_or_else(|| Redirect::to("/login").into_response())
}

/// The session or API token a request carries; `None`: neither.
fn api_caller(state: &AppState, headers: &HeaderMap) -> Option<String> {
    if let Some(session) = session_of(state, headers, now_millis()) {
        return Some(session.user);
    }
    let token = headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")?;
    let hash = auth::token_sha256(token.trim());
    state
        .token_hashes
        .iter()
        .find(|(known, _)| auth::same_secret(known, &hash))
        .map(|(_, name)| name.clone())
}

fn unauthorised() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        "log in, or send an API token: Authorization: Bearer TOKEN\n",
    )
        .into_response()
}

async fn forecourt_page(State(state): State<Shared>, headers: HeaderMap) -> Response {
    match logged_in(&state, &headers) {
        Ok(session) => Html(pages::forecourt(&state.station_id, &session)).into_response(),
        Err(to_login) => to_login,
    }
}

async fn health_page(State(state): State<Shared>, headers: HeaderMap) -> Response {
    match logged_in(&state, &headers) {
        Ok(session) => {
            let health = state.health.borrow().clone();
            Html(pages::health(
                &state.station_id,
                &session,
                health.as_ref(),
                now_millis(),
            ))
            .into_response()
        }
        Err(to_login) => to_login,
    }
}

/// Today hour by hour and the last 7 days, from the station's hourly summaries (the hour being
/// counted asked of the station), and the cars at each pump now.
async fn analytics_page(State(state): State<Shared>, headers: HeaderMap) -> Response {
    let session = match logged_in(&state, &headers) {
        Ok(session) => session,
        Err(to_login) => return to_login,
    };
    let now = now_millis();
    let so_far = run_command(
        &state,
        "hourly",
        &format!(r#"{{"id":"console","hour":{now}}}"#),
    )
    .await
    .ok()
    .and_then(|v| serde_json::from_value::<wire::HourSummary>(v).ok());
    let hours = state.closed_hours.borrow().clone();
    let queues: Vec<(FpNumber, usize)> = lock(&state.forecourt)
        .tiles()
        .map(|t| (t.fp, t.cars.len()))
        .collect();
    let figures = crate::charts::Figures {
        hours: &hours,
        so_far: so_far.as_ref(),
        now,
        utc_offset_ms: state.utc_offset_ms,
    };
    let body = crate::charts::analytics(&figures, &queues);
    Html(pages::analytics(&state.station_id, &session, &body)).into_response()
}

async fn login_page(State(state): State<Shared>) -> Response {
    login_form(&state, StatusCode::OK, None)
}

/// The login page with a fresh CSRF token in a cookie and in the form (double submit: another
/// site can make a browser post the form, but cannot read or set the cookie to match).
fn login_form(state: &AppState, status: StatusCode, message: Option<&str>) -> Response {
    let Ok(csrf) = auth::random_token() else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "no random source\n").into_response();
    };
    let cookie = HeaderValue::from_str(&format!(
        "{LOGIN_CSRF_COOKIE}={csrf}; HttpOnly; SameSite=Strict; Path=/login; Max-Age=3600{}",
        secure_attribute(state.https)
    ));
    let mut response = (
        status,
        Html(pages::login(&state.station_id, &csrf, message)),
    )
        .into_response();
    if let Ok(cookie) = cookie {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

#[derive(Deserialize)]
struct LoginForm {
    user: String,
    password: String,
    /// Missing is refused like wrong, with the login page.
    #[serde(default)]
    csrf: String,
}

async fn login(
    State(state): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let expected = cookie(&headers, LOGIN_CSRF_COOKIE).unwrap_or("");
    if expected.is_empty() || !auth::same_secret(expected, &form.csrf) {
        return login_form(
            &state,
            StatusCode::FORBIDDEN,
            Some("The form had expired or did not come from this page. Try again."),
        );
    }
    let now = now_millis();
    let address = peer.ip().to_string();
    let keys = [form.user.as_str(), address.as_str()];
    let audit = |outcome: &str| AuditEntry {
        t: now,
        user: form.user.clone(),
        address: address.clone(),
        action: AuditAction::Login,
        outcome: outcome.into(),
    };
    if !lock(&state.limiter).may_try(&keys, now) {
        warn!(user = %form.user, %address, "console: login refused, too many failures");
        state.audit.record(audit("locked: too many failures")).await;
        return login_form(
            &state,
            StatusCode::TOO_MANY_REQUESTS,
            Some("Too many failed logins. Wait 15 minutes."),
        );
    }
    let user = state.users.get(&form.user).cloned();
    // An unknown name costs the same hash as a known one, so timing does not tell names apart.
    let phc = match &user {
        Some(u) => u.password_hash.clone(),
        None => dummy_hash().to_string(),
    };
    let password = form.password;
    let matches = tokio::task::spawn_blocking(move || auth::password_matches(&password, &phc))
        .await
        .unwrap_or(false);
    let Some(user) = user.filter(|_| matches) else {
        lock(&state.limiter).failed(&keys, now);
        warn!(user = %form.user, %address, "console: wrong user name or password");
        state
            .audit
            .record(audit("wrong user name or password"))
            .await;
        return login_form(
            &state,
            StatusCode::UNAUTHORIZED,
            Some("Wrong user name or password."),
        );
    };
    lock(&state.limiter).succeeded(&user.name);
    let (Ok(id), Ok(csrf)) = (auth::random_token(), auth::random_token()) else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "no random source\n").into_response();
    };
    lock(&state.sessions).insert(
        id.clone(),
        Session {
            user: user.name.clone(),
            role: user.role,
            csrf,
            expires_t: now + state.session_ms,
        },
        now,
    );
    info!(user = %user.name, role = ?user.role, %address, "console: logged in");
    state.audit.record(audit("ok")).await;
    let mut response = Redirect::to("/").into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        session_cookie(&id, state.session_ms / 1000, state.https),
    );
    response
}

/// argon2id of a random password nobody knows: what an unknown user name is checked against.
fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| {
        auth::random_token()
            .and_then(|password| auth::hash_password(&password))
            .unwrap_or_default()
    })
}

#[derive(Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

async fn logout(
    State(state): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    let now = now_millis();
    let Some(id) = cookie(&headers, SESSION_COOKIE) else {
        return Redirect::to("/login").into_response();
    };
    let Some(session) = session_of(&state, &headers, now) else {
        return Redirect::to("/login").into_response();
    };
    if !auth::same_secret(&session.csrf, &form.csrf) {
        return (StatusCode::FORBIDDEN, "missing or wrong CSRF token\n").into_response();
    }
    info!(user = %session.user, "console: logged out");
    lock(&state.sessions).remove(id);
    state
        .audit
        .record(AuditEntry {
            t: now,
            user: session.user,
            address: peer.ip().to_string(),
            action: AuditAction::Logout,
            outcome: "ok".into(),
        })
        .await;
    let mut response = Redirect::to("/login").into_response();
    response
        .headers_mut()
        .append(header::SET_COOKIE, session_cookie("", 0, state.https));
    response
}

async fn sales_page(State(state): State<Shared>, headers: HeaderMap) -> Response {
    match logged_in(&state, &headers) {
        Ok(session) => sales_response(&state, &session, StatusCode::OK, None),
        Err(to_login) => to_login,
    }
}

fn sales_response(
    state: &AppState,
    session: &Session,
    status: StatusCode,
    message: Option<(bool, &str)>,
) -> Response {
    let sales: Vec<_> = lock(&state.forecourt).recent_sales().cloned().collect();
    let has_crop = |id, role| state.evidence.as_ref().is_some_and(|e| e.has(id, role));
    (
        status,
        Html(pages::sales(
            &state.station_id,
            session,
            &sales,
            &has_crop,
            message,
        )),
    )
        .into_response()
}

/// A JPEG (never cached: see `security_headers`).
fn jpeg_response(jpeg: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, "image/jpeg")], jpeg).into_response()
}

fn no_crop() -> Response {
    (StatusCode::NOT_FOUND, "no such crop\n").into_response()
}

/// One of the crops behind a sale's verdict (`plate` or `runner-up`); `404` when none was kept.
async fn sale_crop(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((sale_id, role)): Path<(String, String)>,
) -> Response {
    if let Err(to_login) = logged_in(&state, &headers) {
        return to_login;
    }
    let (Ok(sale_id), Some(role), Some(store)) = (
        uuid::Uuid::parse_str(&sale_id),
        CropRole::parse(&role),
        state.evidence.clone(),
    ) else {
        return no_crop();
    };
    let read = match tokio::task::spawn_blocking(move || store.get(sale_id, role)).await {
        Ok(Ok(jpeg)) => return jpeg.map_or_else(no_crop, jpeg_response),
        Ok(Err(e)) => e.to_string(),
        Err(e) => e.to_string(),
    };
    warn!(error = %read, "a sale's crop could not be read");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        "the crop could not be read\n",
    )
        .into_response()
}

/// How recent a plate's crop must be to show on a pump's tile.
const TILE_CROP_MS: i64 = 10 * 60_000;

/// The newest crop of a plate read in the last minutes (the car on a pump's tile); `404`
/// without one.
async fn plate_crop(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(plate): Path<String>,
) -> Response {
    if let Err(to_login) = logged_in(&state, &headers) {
        return to_login;
    }
    match state.crops.latest(&plate, now_millis() - TILE_CROP_MS) {
        Some(crop) => jpeg_response(crop.jpeg.as_ref().clone()),
        None => no_crop(),
    }
}

#[derive(Deserialize)]
struct CorrectionForm {
    #[serde(default)]
    csrf: String,
    sale_id: String,
    /// Empty: no plate.
    #[serde(default)]
    plate: String,
}

/// What the console asks the station: a `staff_correction` command's payload.
#[derive(serde::Serialize)]
struct StaffCorrectionCommand<'a> {
    id: &'a str,
    sale_id: &'a str,
    plate: Option<&'a str>,
    by: &'a str,
}

/// A staff correction: checked here for a quick answer, checked again and carried out by the
/// station (a `sale_correction` to HQ), recorded in the audit log either way.
async fn correct_sale(
    State(state): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<CorrectionForm>,
) -> Response {
    let session = match logged_in(&state, &headers) {
        Ok(session) => session,
        Err(to_login) => return to_login,
    };
    if !auth::same_secret(&session.csrf, &form.csrf) {
        return sales_response(
            &state,
            &session,
            StatusCode::FORBIDDEN,
            Some((
                false,
                "The form had expired or did not come from this page: nothing changed.",
            )),
        );
    }
    let plate = form.plate.trim();
    let plate = (!plate.is_empty()).then_some(plate);
    if let Some(p) = plate.filter(|p| !forecourt_events::is_valid_plate(p)) {
        let why = format!("{p:?} is not a Chinese plate: nothing changed.");
        return sales_response(
            &state,
            &session,
            StatusCode::BAD_REQUEST,
            Some((false, &why)),
        );
    }
    let outcome = ask_station(
        &state,
        &StaffCorrectionCommand {
            id: "console",
            sale_id: form.sale_id.trim(),
            plate,
            by: &session.user,
        },
    )
    .await;
    state
        .audit
        .record(AuditEntry {
            t: now_millis(),
            user: session.user.clone(),
            address: peer.ip().to_string(),
            action: AuditAction::Correction {
                sale_id: form.sale_id.trim().parse().unwrap_or_default(),
                plate: plate.map(str::to_string),
            },
            outcome: outcome.as_ref().err().map_or("ok".into(), Clone::clone),
        })
        .await;
    match outcome {
        Ok(()) => {
            info!(user = %session.user, sale = %form.sale_id, plate = plate.unwrap_or("none"), "console: staff correction sent");
            let done = format!(
                "Sent to HQ: the sale was {}.",
                plate.map_or("no plate's".to_string(), |p| p.to_string())
            );
            sales_response(&state, &session, StatusCode::OK, Some((true, &done)))
        }
        Err(why) => {
            let why = format!("Not corrected: {why}");
            sales_response(
                &state,
                &session,
                StatusCode::BAD_REQUEST,
                Some((false, &why)),
            )
        }
    }
}

/// Runs a `staff_correction` through the station's command queue; its failure in words.
async fn ask_station(state: &AppState, command: &StaffCorrectionCommand<'_>) -> Result<(), String> {
    let payload = serde_json::to_string(command).map_err(|e| e.to_string())?;
    run_command(state, "staff_correction", &payload)
        .await
        .map(|_| ())
}

/// Runs the station's command `name` through its queue: its result, or its failure in words.
async fn run_command(
    state: &AppState,
    name: &str,
    payload: &str,
) -> Result<serde_json::Value, String> {
    let action = station::StationCommands::local(name, payload).map_err(|e| e.to_string())?;
    let (reply, answer) = oneshot::channel();
    let request = uplink::CommandRequest {
        command: uplink::Command::local("console", action),
        reply,
    };
    if state.commands.send(request).await.is_err() {
        return Err("the station is stopping".into());
    }
    match tokio::time::timeout(COMMAND_TIMEOUT, answer).await {
        Ok(Ok(uplink::CommandReply::Done(result))) => Ok(result),
        Ok(Ok(uplink::CommandReply::Failed(why))) => Err(why),
        Ok(Err(_)) => Err("the station did not answer".into()),
        Err(_) => Err("the station did not answer within 10 s".into()),
    }
}

/// The session of an installer, or the response for anyone else (the login page, or `403`).
fn installer(state: &AppState, headers: &HeaderMap) -> Result<Session, Response> {
    let session = logged_in(state, headers)?;
    if session.role < Role::Installer {
        warn!(user = %session.user, "console: the installer's pages refused to a staff user");
        return Err((
            StatusCode::FORBIDDEN,
            Html(pages::refused(
                &state.station_id,
                &session,
                "The installer's pages are for installers.",
            )),
        )
            .into_response());
    }
    Ok(session)
}

async fn installer_page(State(state): State<Shared>, headers: HeaderMap) -> Response {
    match installer(&state, &headers) {
        Ok(session) => Html(pages::installer(
            &state.station_id,
            &session,
            &state.cameras,
        ))
        .into_response(),
        Err(refused) => refused,
    }
}

/// The camera's latest picture (JPEG), `404` until the reader made one.
async fn installer_snapshot(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(camera): Path<String>,
) -> Response {
    if let Err(refused) = installer(&state, &headers) {
        return refused;
    }
    match state.snapshots.get(&camera) {
        Some(shot) => jpeg_response(shot.jpeg.as_ref().clone()),
        None => (StatusCode::NOT_FOUND, "no picture from this camera yet\n").into_response(),
    }
}

/// The plates read on every camera as they are read (SSE, event `reads`: the frame's camera,
/// capture time and reads with their boxes), for the installer's page to draw over the
/// pictures, coloured by the zone each falls in. A page that falls behind skips frames.
async fn installer_reads(State(state): State<Shared>, headers: HeaderMap) -> Response {
    if let Err(refused) = installer(&state, &headers) {
        return refused;
    }
    let frames = BroadcastStream::new(state.reads.subscribe()).filter_map(|frame| {
        let frame = frame.ok()?;
        Event::default()
            .event("reads")
            .json_data(frame.as_ref())
            .ok()
            .map(Ok::<_, Infallible>)
    });
    Sse::new(frames)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

/// The zones the config file holds now.
async fn installer_zones(State(state): State<Shared>, headers: HeaderMap) -> Response {
    if let Err(refused) = installer(&state, &headers) {
        return refused;
    }
    let zones = state.zones.clone();
    match tokio::task::spawn_blocking(move || zones.layout()).await {
        Ok(Ok(layout)) => Json(layout).into_response(),
        Ok(Err(e)) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    }
}

#[derive(Deserialize)]
struct SaveZones {
    #[serde(default)]
    csrf: String,
    layout: matcher::Layout,
}

/// What a save did, for the page.
#[derive(serde::Serialize)]
struct SaveOutcome {
    saved: bool,
    /// Where the previous file is, when saved.
    backup: Option<String>,
    /// The reload's answer (`applied`, `needs_restart`), or why the file was not saved or not
    /// applied.
    reload: Option<serde_json::Value>,
    problems: Vec<String>,
}

/// Saves the zones into the config file (checked as check-config checks it, the previous file
/// kept) and applies them live, as SIGHUP does.
async fn save_zones(
    State(state): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Json<SaveZones>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let session = match installer(&state, &headers) {
        Ok(session) => session,
        Err(refused) => return refused,
    };
    let refuse = |status: StatusCode, problems: Vec<String>| {
        (
            status,
            Json(SaveOutcome {
                saved: false,
                backup: None,
                reload: None,
                problems,
            }),
        )
            .into_response()
    };
    let Json(save) = match body {
        Ok(body) => body,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, vec![e.body_text()]),
    };
    if !auth::same_secret(&session.csrf, &save.csrf) {
        return refuse(
            StatusCode::FORBIDDEN,
            vec!["missing or wrong CSRF token: nothing saved".into()],
        );
    }
    let zones = state.zones.clone();
    let layout = save.layout.clone();
    let saved = tokio::task::spawn_blocking(move || zones.save(&layout))
        .await
        .unwrap_or_else(|e| Err(ZoneFileError::File(e.to_string())));
    let outcome = match &saved {
        Ok(_) => "ok".to_string(),
        Err(e) => e.to_string(),
    };
    state
        .audit
        .record(AuditEntry {
            t: now_millis(),
            user: session.user.clone(),
            address: peer.ip().to_string(),
            action: AuditAction::Zones {
                layout: save.layout,
            },
            outcome,
        })
        .await;
    let saved = match saved {
        Ok(saved) => saved,
        Err(ZoneFileError::Invalid(problems)) => return refuse(StatusCode::BAD_REQUEST, problems),
        Err(e) => return refuse(StatusCode::INTERNAL_SERVER_ERROR, vec![e.to_string()]),
    };
    info!(user = %session.user, backup = %saved.backup.display(), "console: zones saved; reloading");
    let reload = run_command(&state, "reload_config", r#"{"id":"console"}"#).await;
    let (reload, problems) = match reload {
        Ok(result) => (Some(result), Vec::new()),
        Err(why) => (None, vec![format!("saved, but not applied: {why}")]),
    };
    Json(SaveOutcome {
        saved: true,
        backup: Some(saved.backup.display().to_string()),
        reload,
        problems,
    })
    .into_response()
}

/// Every tile as JSON: the state a page or a POS starts from.
async fn api_fps(State(state): State<Shared>, headers: HeaderMap) -> Response {
    if api_caller(&state, &headers).is_none() {
        return unauthorised();
    }
    let tiles: Vec<_> = lock(&state.forecourt).tiles().cloned().collect();
    Json(tiles).into_response()
}

/// The API's event stream: arrivals, fuelling point states and sales, as they are decided.
async fn api_events(State(state): State<Shared>, headers: HeaderMap) -> Response {
    let Some(caller) = api_caller(&state, &headers) else {
        return unauthorised();
    };
    info!(%caller, "console: API event stream opened");
    event_stream(&state, |_| true).into_response()
}

/// The arrivals ticker for the POS screen: "苏E05EV8 at pump 3" as cars arrive.
async fn arrivals_page(State(state): State<Shared>, headers: HeaderMap) -> Response {
    match logged_in(&state, &headers) {
        Ok(session) => Html(pages::arrivals(&state.station_id, &session)).into_response(),
        Err(to_login) => to_login,
    }
}

/// The recent arrivals as JSON, newest first (provisional ones marked; retracted ones gone).
async fn api_arrivals(State(state): State<Shared>, headers: HeaderMap) -> Response {
    if api_caller(&state, &headers).is_none() {
        return unauthorised();
    }
    let arrivals: Vec<_> = lock(&state.forecourt).recent_arrivals().cloned().collect();
    Json(arrivals).into_response()
}

/// The console pages' stream: the tiles as they change, and the arrivals.
async fn live_stream(State(state): State<Shared>, headers: HeaderMap) -> Response {
    if session_of(&state, &headers, now_millis()).is_none() {
        return unauthorised();
    }
    event_stream(&state, |e| {
        matches!(e, ApiEvent::FpState(_) | ApiEvent::Arrival(_))
    })
    .into_response()
}

/// SSE of the API events `keep` lets through, each with the time the station decided it and the
/// time it left the console (ms since the epoch, `decided_t`, `sent_t`), so a client can tell
/// how long it took to reach it. A client that fell behind gets a `resync` event: fetch
/// `/api/fps` again.
fn event_stream(
    state: &AppState,
    keep: fn(&ApiEvent) -> bool,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let events = BroadcastStream::new(state.events.subscribe()).filter_map(move |e| match e {
        Ok(Decided { decided_t, event }) if keep(&event) => {
            let sent = SentEvent {
                decided_t,
                sent_t: now_millis(),
                event: &event,
            };
            Some(Ok(Event::default()
                .event(event.name())
                .json_data(sent)
                .unwrap_or_else(|_| {
                    Event::default().event("resync").data("{}")
                })))
        }
        Ok(_) => None,
        Err(BroadcastStreamRecvError::Lagged(_)) => {
            Some(Ok(Event::default().event("resync").data("{}")))
        }
    });
    Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

#[derive(serde::Serialize)]
struct SentEvent<'a> {
    decided_t: UnixMillis,
    sent_t: UnixMillis,
    #[serde(flatten)]
    event: &'a ApiEvent,
}

async fn css() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        pages::CSS,
    )
        .into_response()
}

async fn js() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        pages::JS,
    )
        .into_response()
}

async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "not found\n").into_response()
}
