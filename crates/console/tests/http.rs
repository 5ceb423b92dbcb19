//! The console over real TCP: logins, CSRF, the rate limit, API tokens, the live streams, bad
//! input, HTTPS. A plain HTTP/1.1 client on a socket, so every header is seen as a browser gets
//! it.

// The uplink's test PKI (openssl command line); its broker helper is not needed here.
#[allow(dead_code)]
#[path = "../../uplink/tests/support/pki.rs"]
mod pki;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use console::audit::AuditLog;
use console::settings::{ApiTokenSettings, UserSettings};
use console::zone_file::{SavedZones, ZoneFile, ZoneFileError};
use console::{Console, ConsoleFeeds, ConsoleSettings, Role};
use forecourt_events::now_millis;
use serde_json::json;
use station::evidence::CropRole;
use station::live::LiveRecord;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{broadcast, mpsc, watch};
use wire::Stream;

const TOKEN: &str = "pos-token-for-tests";

/// These tests have no config file: the installer's page is refused before it is reached, and
/// says so where it would be (the browser test saves zones into a real one).
struct NoConfigFile;

impl ZoneFile for NoConfigFile {
    fn layout(&self) -> Result<matcher::Layout, ZoneFileError> {
        Err(ZoneFileError::File("no config file in this test".into()))
    }
    fn save(&self, _: &matcher::Layout) -> Result<SavedZones, ZoneFileError> {
        Err(ZoneFileError::File("no config file in this test".into()))
    }
}

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// `name=value` of a Set-Cookie header, without its attributes.
    fn cookie(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
            .map(|(_, v)| v.split(';').next().unwrap_or("").to_string())
            .find(|c| c.starts_with(&format!("{name}=")))
    }
}

async fn send(addr: SocketAddr, request: String) -> Reply {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut raw))
        .await
        .expect("reply within 20 s")
        .unwrap();
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines.next().unwrap()[9..12].parse().unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Reply {
        status,
        headers,
        body: body.to_string(),
    }
}

/// Reads `stream` into `seen` until it holds `needle`, for at most 20 s.
async fn read_until(stream: &mut TcpStream, seen: &mut String, needle: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut buf = [0u8; 4096];
    while !seen.contains(needle) {
        let n = tokio::time::timeout_at(deadline, stream.read(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("no {needle:?} within 20 s: {seen}"))
            .unwrap();
        assert!(n > 0, "the stream closed before {needle:?}: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
}

async fn get(addr: SocketAddr, path: &str, extra: &str) -> Reply {
    send(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: console\r\nConnection: close\r\n{extra}\r\n"),
    )
    .await
}

async fn post(addr: SocketAddr, path: &str, extra: &str, body: &str) -> Reply {
    send(
        addr,
        format!(
            "POST {path} HTTP/1.1\r\nHost: console\r\nConnection: close\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n{extra}\r\n{body}",
            body.len()
        ),
    )
    .await
}

/// The CSRF value of the page's form.
fn form_csrf(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").unwrap() + 19;
    html[at..].split('"').next().unwrap().to_string()
}

struct Running {
    addr: SocketAddr,
    records: broadcast::Sender<LiveRecord>,
    /// The commands the console put in the station's queue (their names), answered with
    /// `answer` (None: done).
    commands: Arc<Mutex<Vec<String>>>,
    answer: Arc<Mutex<Option<String>>>,
    audit: PathBuf,
    /// HQ's notes on plates, as the station would change them.
    plate_notes: watch::Sender<Arc<station::plate_notes::PlateNotes>>,
    /// Frames with reads, as the station passes them on.
    reads: broadcast::Sender<Arc<forecourt_events::FramePlates>>,
    /// The plate crops the reader would keep, and the sales' crops the station would write.
    crops: station::crops::PlateCrops,
    evidence: station::evidence::EvidenceStore,
    _dir: tempfile::TempDir,
    _stop: watch::Sender<bool>,
}

async fn start() -> Running {
    start_with(|_| {}).await
}

/// [`start`] with its settings changed by `edit` first.
async fn start_with(edit: impl FnOnce(&mut ConsoleSettings)) -> Running {
    let mut settings = ConsoleSettings {
        listen: "127.0.0.1:0".into(),
        session_hours: 1.0,
        users: vec![
            UserSettings {
                name: "anna".into(),
                role: Role::Staff,
                password_hash: console::auth::hash_password("correct horse").unwrap(),
            },
            UserSettings {
                name: "ivan".into(),
                role: Role::Installer,
                password_hash: console::auth::hash_password("correct horse").unwrap(),
            },
        ],
        api_tokens: vec![ApiTokenSettings {
            name: "pos".into(),
            sha256: console::auth::token_sha256(TOKEN),
        }],
        tls_cert: None,
        tls_key: None,
        utc_offset_hours: 8.0,
        crops_max_mb: 200,
        crops_max_days: 30,
    };
    edit(&mut settings);
    let console = Console::bind(settings).await.unwrap();
    let addr = console.local_addr().unwrap();
    let (records, records_rx) = broadcast::channel(64);
    let (_health, health_rx) = watch::channel(None);
    let (plate_notes, plate_notes_rx) = watch::channel(Arc::default());
    let (reads, _) = broadcast::channel(16);
    let (stop, stop_rx) = watch::channel(false);
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let crops = station::crops::PlateCrops::enabled();
    let evidence = station::evidence::EvidenceStore::open(
        &dir.path().join("crops"),
        station::evidence::EvidenceLimits {
            max_bytes: 1 << 20,
            max_age_ms: 86_400_000,
        },
    )
    .unwrap();
    // The station's side of the command queue: notes each command and answers it.
    let (commands_tx, mut commands_rx) = mpsc::channel::<uplink::CommandRequest>(4);
    let commands = Arc::new(Mutex::new(Vec::new()));
    let answer: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
    let (seen, failing) = (commands.clone(), answer.clone());
    tokio::spawn(async move {
        while let Some(request) = commands_rx.recv().await {
            seen.lock()
                .unwrap()
                .push(request.command.action.name().to_string());
            let reply = match failing.lock().unwrap().clone() {
                Some(why) => uplink::CommandReply::Failed(why),
                None => uplink::CommandReply::Done(json!({})),
            };
            let _ = request.reply.send(reply);
        }
    });
    let feeds = ConsoleFeeds {
        records: records_rx,
        health: health_rx,
        fps: vec![1, 2],
        station_id: "test-001".into(),
        commands: commands_tx,
        audit: AuditLog::new(audit.clone()),
        cameras: vec!["cam1".into()],
        snapshots: station::snapshots::Snapshots::enabled(),
        zones: Arc::new(NoConfigFile),
        plate_notes: plate_notes_rx,
        reads: reads.clone(),
        closed_hours: watch::channel(Arc::default()).1,
        crops: crops.clone(),
        evidence: Some(evidence.clone()),
    };
    tokio::spawn(console.run(feeds, stop_rx));
    Running {
        crops,
        evidence,
        addr,
        records,
        commands,
        answer,
        audit,
        plate_notes,
        reads,
        _dir: dir,
        _stop: stop,
    }
}

/// Logs in as anna (staff).
async fn log_in(addr: SocketAddr, password: &str) -> Reply {
    log_in_as(addr, "anna", password).await
}

/// Logs in as `user`; the session cookie is in the reply (`fa_session=...`).
async fn log_in_as(addr: SocketAddr, user: &str, password: &str) -> Reply {
    let page = get(addr, "/login", "").await;
    let csrf_cookie = page.cookie("fa_login_csrf").unwrap();
    let csrf = form_csrf(&page.body);
    post(
        addr,
        "/login",
        &format!("Cookie: {csrf_cookie}\r\n"),
        &format!("user={user}&password={password}&csrf={csrf}"),
    )
    .await
}

/// Logs in as anna and waits (up to 20 s) for the sales page to list `sale_id`: the cookie
/// header and the page.
async fn sales_page_listing(c: &Running, sale_id: &str) -> (String, Reply) {
    let session = log_in(c.addr, "correct+horse")
        .await
        .cookie("fa_session")
        .unwrap();
    let cookie = format!("Cookie: {session}\r\n");
    let until = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let page = get(c.addr, "/sales", &cookie).await;
        if page.body.contains(sale_id) || tokio::time::Instant::now() > until {
            return (cookie, page);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn pages_need_a_login_and_a_login_needs_the_forms_csrf_token() {
    let c = start().await;
    let home = get(c.addr, "/", "").await;
    assert_eq!(home.status, 303);
    assert_eq!(home.header("location"), Some("/login"));
    assert_eq!(get(c.addr, "/health", "").await.status, 303);

    // Without the cookie that matches the form's token (another site's form): refused.
    let page = get(c.addr, "/login", "").await;
    let csrf = form_csrf(&page.body);
    let forged = post(
        c.addr,
        "/login",
        "",
        &format!("user=anna&password=correct+horse&csrf={csrf}"),
    )
    .await;
    assert_eq!(forged.status, 403);
    assert!(forged.cookie("fa_session").is_none());

    let wrong = log_in(c.addr, "wrong").await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.cookie("fa_session").is_none());
    assert!(wrong.body.contains("Wrong user name or password"));

    let right = log_in(c.addr, "correct+horse").await;
    assert_eq!(right.status, 303, "{}", right.body);
    let session = right.cookie("fa_session").unwrap();
    let set = right.header("set-cookie").unwrap();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    let home = get(c.addr, "/", &format!("Cookie: {session}\r\n")).await;
    assert_eq!(home.status, 200);
    assert!(home.body.contains("id=\"forecourt\""));
    assert!(home.body.contains("anna"));
    for (name, value) in [
        ("x-frame-options", "DENY"),
        ("cache-control", "no-store"),
        ("x-content-type-options", "nosniff"),
    ] {
        assert_eq!(home.header(name), Some(value), "{name}");
    }
    assert!(home
        .header("content-security-policy")
        .unwrap()
        .contains("default-src 'self'"));
    let health = get(c.addr, "/health", &format!("Cookie: {session}\r\n")).await;
    assert_eq!(health.status, 200);
    assert!(health.body.contains("No health report yet"));
}

#[tokio::test]
async fn logout_needs_the_sessions_csrf_token() {
    let c = start().await;
    let session = log_in(c.addr, "correct+horse")
        .await
        .cookie("fa_session")
        .unwrap();
    let cookie = format!("Cookie: {session}\r\n");
    let refused = post(c.addr, "/logout", &cookie, "csrf=guess").await;
    assert_eq!(refused.status, 403);
    assert_eq!(get(c.addr, "/", &cookie).await.status, 200);
    let csrf = form_csrf(&get(c.addr, "/", &cookie).await.body);
    let out = post(c.addr, "/logout", &cookie, &format!("csrf={csrf}")).await;
    assert_eq!(out.status, 303);
    assert_eq!(get(c.addr, "/", &cookie).await.status, 303);
}

#[tokio::test]
async fn five_wrong_passwords_lock_the_user_even_against_the_right_one() {
    let c = start().await;
    for _ in 0..5 {
        assert_eq!(log_in(c.addr, "wrong").await.status, 401);
    }
    let locked = log_in(c.addr, "correct+horse").await;
    assert_eq!(locked.status, 429);
    assert!(locked.cookie("fa_session").is_none());
}

#[tokio::test]
async fn bad_input_gets_a_clear_refusal() {
    let c = start().await;
    let huge = "x".repeat(100_000);
    let page = get(c.addr, "/login", "").await;
    let csrf_cookie = page.cookie("fa_login_csrf").unwrap();
    let big = post(
        c.addr,
        "/login",
        &format!("Cookie: {csrf_cookie}\r\n"),
        &format!("user=anna&password={huge}&csrf=x"),
    )
    .await;
    assert_eq!(big.status, 413);
    let malformed = post(
        c.addr,
        "/login",
        &format!("Cookie: {csrf_cookie}\r\n"),
        "user=anna",
    )
    .await;
    assert_eq!(malformed.status, 422);
    assert_eq!(get(c.addr, "/nothing-here", "").await.status, 404);
}

#[tokio::test]
async fn the_api_needs_a_token_and_streams_what_the_station_decides() {
    let c = start().await;
    assert_eq!(get(c.addr, "/api/fps", "").await.status, 401);
    let wrong = get(c.addr, "/api/fps", "Authorization: Bearer nope\r\n").await;
    assert_eq!(wrong.status, 401);
    let auth = format!("Authorization: Bearer {TOKEN}\r\n");
    let fps = get(c.addr, "/api/fps", &auth).await;
    assert_eq!(fps.status, 200);
    let tiles: serde_json::Value = serde_json::from_str(&fps.body).unwrap();
    assert_eq!(tiles.as_array().unwrap().len(), 2);
    assert_eq!(tiles[0]["activity"], "idle");

    // The event stream: open it, then the station decides a nozzle-out.
    let mut stream = TcpStream::connect(c.addr).await.unwrap();
    stream
        .write_all(format!("GET /api/events HTTP/1.1\r\nHost: console\r\n{auth}\r\n").as_bytes())
        .await
        .unwrap();
    let mut seen = String::new();
    // The headers first: the stream is open before the record is sent.
    read_until(&mut stream, &mut seen, "\r\n\r\n").await;
    assert!(seen.starts_with("HTTP/1.1 200"), "{seen}");
    assert!(seen.contains("text/event-stream"));
    c.records
        .send(LiveRecord {
            stream: Stream::Nozzle,
            body: json!({"t": 1_700_000_000_000i64, "fp": 2, "nozzle": 1, "state": "out"}),
            decided_t: 1_700_000_000_005,
            id: None,
        })
        .unwrap();
    read_until(&mut stream, &mut seen, "nozzle_out").await;
    assert!(seen.contains("event: fp_state"), "{seen}");
    assert!(seen.contains("\"sent_t\":"), "{seen}");
    assert!(seen.contains("\"decided_t\":1700000000005"), "{seen}");
    let fps = get(c.addr, "/api/fps", &auth).await;
    let tiles: serde_json::Value = serde_json::from_str(&fps.body).unwrap();
    assert_eq!(tiles[1]["activity"], "nozzle_out");
}

#[tokio::test]
async fn a_staff_correction_goes_to_the_station_with_the_users_name_and_is_audited() {
    let c = start().await;
    let sale_id = "6f1c2d3e-4a5b-4c6d-8e7f-9a0b1c2d3e4f";
    c.records
        .send(LiveRecord {
            stream: Stream::Sale,
            body: json!({"fp": 1, "nozzle": 1, "grade": "95#", "volume": "35.21",
                "amount": "292.95", "price": "8.32", "nozzle_out_t": 1000, "nozzle_in_t": 9000,
                "completed_t": 9500, "plate": null, "plate_confidence": 0.0,
                "match_reason": "unsure"}),
            decided_t: 9600,
            id: Some(sale_id.parse().unwrap()),
        })
        .unwrap();
    let (cookie, page) = sales_page_listing(&c, sale_id).await;
    assert!(page.body.contains(sale_id), "{}", page.body);
    let csrf = form_csrf(&page.body);

    // Without the session's token, or with a plate that is none: refused here, nothing sent.
    let forged = post(
        c.addr,
        "/sales/correct",
        &cookie,
        &format!("sale_id={sale_id}&plate=%E4%BA%ACA12345"),
    )
    .await;
    assert_eq!(forged.status, 403);
    let bad = post(
        c.addr,
        "/sales/correct",
        &cookie,
        &format!("csrf={csrf}&sale_id={sale_id}&plate=A1"),
    )
    .await;
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("is not a Chinese plate"), "{}", bad.body);
    assert!(c.commands.lock().unwrap().is_empty());
    let anonymous = post(
        c.addr,
        "/sales/correct",
        "",
        &format!("csrf={csrf}&sale_id={sale_id}&plate="),
    )
    .await;
    assert_eq!(anonymous.status, 303);

    // 京A12345, as the browser sends it.
    let done = post(
        c.addr,
        "/sales/correct",
        &cookie,
        &format!("csrf={csrf}&sale_id={sale_id}&plate=%E4%BA%ACA12345"),
    )
    .await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert!(done.body.contains("Sent to HQ"), "{}", done.body);
    *c.answer.lock().unwrap() = Some("no sale with that id was sent by this station".into());
    let failed = post(
        c.addr,
        "/sales/correct",
        &cookie,
        &format!("csrf={csrf}&sale_id={sale_id}&plate="),
    )
    .await;
    assert_eq!(failed.status, 400);
    assert!(
        failed.body.contains("Not corrected: no sale with that id"),
        "{}",
        failed.body
    );
    assert_eq!(
        *c.commands.lock().unwrap(),
        ["staff_correction", "staff_correction"]
    );

    let audit: Vec<serde_json::Value> = std::fs::read_to_string(&c.audit)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let corrections: Vec<_> = audit
        .iter()
        .filter(|e| e["action"] == "correction")
        .collect();
    assert_eq!(corrections.len(), 2, "{audit:?}");
    assert_eq!(corrections[0]["user"], "anna");
    assert_eq!(corrections[0]["plate"], "京A12345");
    assert_eq!(corrections[0]["outcome"], "ok");
    assert_eq!(corrections[1]["plate"], serde_json::Value::Null);
    assert!(corrections[1]["outcome"]
        .as_str()
        .unwrap()
        .contains("no sale"));
    assert!(audit
        .iter()
        .any(|e| e["action"] == "login" && e["outcome"] == "ok"));
}

#[tokio::test]
async fn the_installers_pages_refuse_staff_and_a_save_without_the_token() {
    let c = start().await;
    let staff = log_in(c.addr, "correct+horse")
        .await
        .cookie("fa_session")
        .unwrap();
    let staff = format!("Cookie: {staff}\r\n");
    for path in [
        "/installer",
        "/installer/zones",
        "/installer/snapshot/cam1",
        "/installer/reads",
    ] {
        let refused = get(c.addr, path, &staff).await;
        assert_eq!(refused.status, 403, "{path}");
    }
    assert!(!get(c.addr, "/", &staff)
        .await
        .body
        .contains("href=\"/installer\""));
    let json = |csrf: &str| format!(r#"{{"csrf":"{csrf}","layout":{{"fps":[]}}}}"#);
    let save = |cookie: String, body: String| async move {
        send(
            c.addr,
            format!(
                "POST /installer/zones HTTP/1.1\r\nHost: console\r\nConnection: close\r\n\
                 Content-Type: application/json\r\nContent-Length: {}\r\n{cookie}\r\n{body}",
                body.len()
            ),
        )
        .await
    };
    assert_eq!(save(staff.clone(), json("x")).await.status, 403);
    assert_eq!(save(String::new(), json("x")).await.status, 303);

    let installer = log_in_as(c.addr, "ivan", "correct+horse")
        .await
        .cookie("fa_session")
        .unwrap();
    let installer = format!("Cookie: {installer}\r\n");
    let page = get(c.addr, "/installer", &installer).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("data-camera=\"cam1\""));
    assert_eq!(
        get(c.addr, "/installer/snapshot/cam1", &installer)
            .await
            .status,
        404
    );
    let csrf = page
        .body
        .split("data-csrf=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    let forged = save(installer.clone(), json("guess")).await;
    assert_eq!(forged.status, 403);
    assert!(forged.body.contains("CSRF"), "{}", forged.body);
    let malformed = save(installer.clone(), "{\"csrf\":".into()).await;
    assert_eq!(malformed.status, 400);
    // Checked and signed: the file's own error comes back, nothing saved.
    let failed = save(installer.clone(), json(&csrf)).await;
    assert_eq!(failed.status, 500);
    assert!(
        failed.body.contains("no config file in this test"),
        "{}",
        failed.body
    );
    assert!(
        c.commands.lock().unwrap().is_empty(),
        "no reload without a save"
    );
}

#[tokio::test]
async fn arrivals_carry_hqs_note_on_their_plate() {
    use station::plate_notes::{NotesChange, PlateNote, PlateNotes};
    let c = start().await;
    let t = 1_700_000_000_000i64;
    let mut notes = PlateNotes::default();
    notes
        .apply(
            NotesChange {
                set: vec![(
                    "苏E05EV8".into(),
                    PlateNote {
                        note: "member, prefers 95#".into(),
                        until: t + 3_600_000,
                    },
                )],
                ..NotesChange::default()
            },
            t,
        )
        .unwrap();
    c.plate_notes.send_replace(Arc::new(notes));
    let arrival = |visit: &str, plate: &str| LiveRecord {
        stream: Stream::Arrival,
        body: json!({"visit": visit, "t": t, "plate": plate, "confidence": 0.97,
            "camera": "cam1", "fp": 2, "first_seen_t": t - 500, "reads": 3}),
        decided_t: t,
        id: None,
    };
    c.records.send(arrival("v1", "苏E05EV8")).unwrap();
    c.records.send(arrival("v2", "京A12345")).unwrap();
    let auth = format!("Authorization: Bearer {TOKEN}\r\n");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let listed = loop {
        let reply = get(c.addr, "/api/arrivals", &auth).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        let listed: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
        if listed.as_array().unwrap().len() == 2 {
            break listed;
        }
        assert!(tokio::time::Instant::now() < deadline, "{listed}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // Newest first; only the plate with a note has one.
    assert_eq!(listed[0]["plate"], "京A12345");
    assert!(listed[0].get("note").is_none(), "{listed}");
    assert_eq!(listed[1]["plate"], "苏E05EV8");
    assert_eq!(listed[1]["note"], "member, prefers 95#");
    let fps = get(c.addr, "/api/fps", &auth).await;
    let tiles: serde_json::Value = serde_json::from_str(&fps.body).unwrap();
    let cars = &tiles[1]["cars"];
    assert_eq!(cars[0]["note"], "member, prefers 95#", "{tiles}");
    assert!(cars[1].get("note").is_none(), "{tiles}");
}

/// `[console] tls_cert` and `tls_key`: HTTPS only (a plain request gets no page), cookies
/// `Secure`; a certificate that is not one, or a key without its certificate, stops the start.
#[tokio::test]
async fn with_a_certificate_the_console_speaks_https_only() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_path_buf();
    pki::make_pki(&d);
    let c = start_with(|s| {
        s.tls_cert = Some(d.join("server.pem"));
        s.tls_key = Some(d.join("server.key"));
    })
    .await;

    // A client that trusts the test CA, as a station's browsers would once it is installed.
    let mut roots = rustls::RootCertStore::empty();
    let ca = std::fs::read(d.join("ca.pem")).unwrap();
    use rustls::pki_types::pem::PemObject;
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&ca) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
    let tcp = TcpStream::connect(c.addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = tokio::time::timeout(Duration::from_secs(20), connector.connect(name, tcp))
        .await
        .expect("handshake within 20 s")
        .unwrap();
    tls.write_all(b"GET /login HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), tls.read_to_end(&mut raw))
        .await
        .expect("reply within 20 s")
        .unwrap();
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    let cookie = text
        .lines()
        .find(|l| {
            l.to_ascii_lowercase()
                .starts_with("set-cookie: fa_login_csrf=")
        })
        .unwrap_or_else(|| panic!("no login cookie:\n{text}"));
    assert!(cookie.contains("; Secure"), "{cookie}");

    // Plain HTTP on the HTTPS port: no page, the connection closes.
    let mut plain = TcpStream::connect(c.addr).await.unwrap();
    plain
        .write_all(b"GET /login HTTP/1.1\r\nHost: console\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(20), plain.read_to_end(&mut raw))
        .await
        .expect("closed within 20 s");
    assert!(
        !String::from_utf8_lossy(&raw).contains("HTTP/1.1 200"),
        "a page over plain HTTP"
    );

    // A certificate file that holds none, a missing key: refused at start, with the file named.
    let mut settings = ConsoleSettings {
        listen: "127.0.0.1:0".into(),
        session_hours: 1.0,
        users: Vec::new(),
        api_tokens: Vec::new(),
        tls_cert: Some(d.join("server.key")),
        tls_key: Some(d.join("server.key")),
        utc_offset_hours: 8.0,
        crops_max_mb: 200,
        crops_max_days: 30,
    };
    let refused = Console::bind(settings.clone()).await.err().unwrap();
    assert!(refused.to_string().contains("server.key"), "{refused}");
    settings.tls_cert = Some(d.join("server.pem"));
    settings.tls_key = Some(d.join("missing.key"));
    let refused = Console::bind(settings).await.err().unwrap();
    assert!(refused.to_string().contains("missing.key"), "{refused}");
}

/// The installer's page follows the plates read as the station takes them (SSE `reads`).
#[tokio::test]
async fn the_installer_sees_the_plates_read_as_they_are_read() {
    let c = start().await;
    let installer = log_in_as(c.addr, "ivan", "correct+horse")
        .await
        .cookie("fa_session")
        .unwrap();
    let mut stream = TcpStream::connect(c.addr).await.unwrap();
    stream
        .write_all(
            format!(
                "GET /installer/reads HTTP/1.1\r\nHost: console\r\nCookie: {installer}\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let mut seen = String::new();
    read_until(&mut stream, &mut seen, "\r\n\r\n").await;
    assert!(seen.starts_with("HTTP/1.1 200"), "{seen}");
    c.reads
        .send(Arc::new(forecourt_events::FramePlates {
            t: 1_700_000_000_000,
            camera: "cam1".into(),
            plates: vec![forecourt_events::PlateRead {
                text: "苏E05EV8".into(),
                confidence: 0.97,
                bbox: [0.2, 0.4, 0.3, 0.45],
            }],
        }))
        .unwrap();
    read_until(&mut stream, &mut seen, "苏E05EV8").await;
    assert!(seen.contains("event: reads"), "{seen}");
    assert!(seen.contains("\"camera\":\"cam1\""), "{seen}");
    assert!(seen.contains("\"bbox\":[0.2,0.4,0.3,0.45]"), "{seen}");
}

/// The analytics page: a login first; then the figures, as SVG, even before any hour closed
/// (the station's own answer for the hour being counted is asked of its command queue).
#[tokio::test]
async fn the_analytics_page_needs_a_login_and_draws_its_figures() {
    let c = start().await;
    assert_eq!(get(c.addr, "/analytics", "").await.status, 303);
    let staff = log_in(c.addr, "correct+horse")
        .await
        .cookie("fa_session")
        .unwrap();
    let page = get(c.addr, "/analytics", &format!("Cookie: {staff}\r\n")).await;
    assert_eq!(page.status, 200, "{}", page.body);
    for figure in [
        "Vehicles and nozzle lifts per hour",
        "Waiting time",
        "Vehicles per day",
        "Single-fill volumes",
        "Cars at each pump now",
    ] {
        assert!(page.body.contains(figure), "{figure}");
    }
    assert!(page.body.contains("<svg viewBox="));
    // The station was asked for the hour being counted (this test's station answers `{}`).
    assert!(c
        .commands
        .lock()
        .unwrap()
        .iter()
        .any(|name| name == "hourly"));
}

#[tokio::test]
async fn a_sales_crops_are_shown_and_served_only_after_a_login() {
    let c = start().await;
    let sale_id: uuid::Uuid = "0b1c2d3e-4a5b-4c6d-8e7f-9a0b1c2d3e4f".parse().unwrap();
    c.evidence
        .keep(sale_id, CropRole::Plate, b"plate-crop", now_millis())
        .unwrap();
    c.crops.offer(station::crops::PlateCrop {
        camera: "cam1".into(),
        text: "苏E05EV8".into(),
        t: now_millis(),
        confidence: 0.97,
        jpeg: Arc::new(b"tile-crop".to_vec()),
    });
    c.records
        .send(LiveRecord {
            stream: Stream::Sale,
            body: json!({"fp": 1, "nozzle": 1, "grade": "95#", "volume": "35.21",
                "amount": "292.95", "price": "8.32", "nozzle_out_t": 1000, "nozzle_in_t": 9000,
                "completed_t": 9500, "plate": "苏E05EV8", "plate_confidence": 0.99,
                "match_reason": "test"}),
            decided_t: 9600,
            id: Some(sale_id),
        })
        .unwrap();
    let crop = format!("/sales/{sale_id}/crop/plate");
    let tile = "/crops/plate/%E8%8B%8FE05EV8";
    // Plates are personal: nothing without a login.
    for path in [crop.as_str(), tile] {
        let anonymous = get(c.addr, path, "").await;
        assert_eq!(anonymous.status, 303, "{path}");
        assert_eq!(anonymous.header("location"), Some("/login"));
    }
    let (cookie, page) = sales_page_listing(&c, &sale_id.to_string()).await;
    // The page shows the crop kept, and only that one.
    assert!(
        page.body.contains(&format!("src=\"{crop}\"")),
        "{}",
        page.body
    );
    assert!(!page.body.contains("crop/runner-up"), "{}", page.body);
    let served = get(c.addr, &crop, &cookie).await;
    assert_eq!(served.status, 200);
    assert_eq!(served.header("content-type"), Some("image/jpeg"));
    assert_eq!(served.header("cache-control"), Some("no-store"));
    assert_eq!(served.body, "plate-crop");
    let served = get(c.addr, tile, &cookie).await;
    assert_eq!((served.status, served.body.as_str()), (200, "tile-crop"));
    // None kept, a role that is none, an id that is none, a plate never read: not found.
    for path in [
        format!("/sales/{sale_id}/crop/runner-up"),
        format!("/sales/{sale_id}/crop/..%2Fx"),
        "/sales/not-a-uuid/crop/plate".to_string(),
        "/crops/plate/%E4%BA%ACA12345".to_string(),
    ] {
        assert_eq!(get(c.addr, &path, &cookie).await.status, 404, "{path}");
    }
}
