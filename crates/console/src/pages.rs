//! The console's HTML, rendered on the server (every value escaped), and its two assets,
//! embedded in the binary. The forecourt page's tiles are drawn by `assets/console.js` from
//! `/api/fps` and kept live from `/live`; without scripts it says so.

use std::fmt::Write;

use forecourt_events::UnixMillis;
use station::health::LocalHealth;

use station::evidence::CropRole;

use crate::auth::Session;
use crate::forecourt::RecentSale;

pub const CSS: &str = include_str!("../assets/console.css");
pub const JS: &str = include_str!("../assets/console.js");

/// `text` safe in HTML text and in double-quoted attributes.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn page(title: &str, station: &str, session: Option<&Session>, body: &str) -> String {
    let nav = match session {
        Some(s) => format!(
            "<nav><a href=\"/\">Forecourt</a> <a href=\"/arrivals\">Arrivals</a> <a href=\"/sales\">Sales</a> <a href=\"/analytics\">Analytics</a> <a href=\"/health\">Health</a>{}\
             <form method=\"post\" action=\"/logout\" class=\"logout\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
             <span class=\"user\">{} ({:?})</span> <button type=\"submit\">Log out</button></form></nav>",
            if s.role >= crate::settings::Role::Installer {
                " <a href=\"/installer\">Installer</a>"
            } else {
                ""
            },
            escape(&s.csrf),
            escape(&s.user),
            s.role
        ),
        None => String::new(),
    };
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} - {}</title><link rel=\"stylesheet\" href=\"/assets/console.css\">\
         <script src=\"/assets/console.js\" defer></script></head>\
         <body><header><h1>{}</h1><span class=\"station\">{}</span>{nav}</header>\n{body}\n</body></html>\n",
        escape(title),
        escape(station),
        escape(title),
        escape(station),
    )
}

pub fn login(station: &str, csrf: &str, message: Option<&str>) -> String {
    let message = message.map_or(String::new(), |m| {
        format!("<p class=\"message\" role=\"alert\">{}</p>", escape(m))
    });
    page(
        "Log in",
        station,
        None,
        &format!(
            "<main class=\"login\">{message}<form method=\"post\" action=\"/login\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
             <label>User <input name=\"user\" autocomplete=\"username\" required maxlength=\"64\"></label>\
             <label>Password <input name=\"password\" type=\"password\" autocomplete=\"current-password\" required maxlength=\"256\"></label>\
             <button type=\"submit\">Log in</button></form></main>",
            escape(csrf)
        ),
    )
}

pub fn forecourt(station: &str, session: &Session) -> String {
    page(
        "Forecourt",
        station,
        Some(session),
        "<main id=\"forecourt\" data-state=\"/api/fps\" data-live=\"/live\">\
         <p class=\"status\" id=\"live-status\">Connecting...</p>\
         <noscript>The forecourt page needs JavaScript to show the pumps live.</noscript>\
         <div id=\"tiles\" class=\"tiles\"></div></main>",
    )
}

pub fn health(
    station: &str,
    session: &Session,
    health: Option<&LocalHealth>,
    now: UnixMillis,
) -> String {
    let body = match health {
        None => "<main><p>No health report yet (the first comes within a minute of the start).</p></main>".to_string(),
        Some(h) => health_body(h, now),
    };
    page("Health", station, Some(session), &body)
}

fn health_body(h: &LocalHealth, now: UnixMillis) -> String {
    let mut out = String::from("<main class=\"health\">");
    let age_s = (now - h.t).max(0) / 1000;
    let _ = write!(
        out,
        "<p>Report from {age_s} s ago. Reload for a newer one.</p>"
    );
    if !h.agent.alarms.is_empty() {
        out.push_str("<section class=\"alarms\"><h2>Alarms</h2><ul>");
        for alarm in &h.agent.alarms {
            let _ = write!(out, "<li>{}</li>", escape(alarm));
        }
        out.push_str("</ul></section>");
    }
    out.push_str(
        "<section><h2>Cameras</h2><table><tr><th>camera</th><th>connected</th>\
         <th>frames/s</th><th>read/s</th><th>still/s</th><th>dropped</th><th>reconnects</th></tr>",
    );
    for c in &h.agent.cameras {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{:.1}</td><td>{:.1}</td><td>{:.1}</td><td>{}</td><td>{}</td></tr>",
            escape(&c.name),
            yes_no(c.connected),
            c.fps,
            c.read_fps,
            c.still_fps,
            c.dropped,
            c.reconnects
        );
    }
    let _ = write!(
        out,
        "</table><p>Plate reader: {} frames read, {} errors, {:.1} ms a read.</p></section>",
        h.agent.plates.frames_read, h.agent.plates.read_errors, h.agent.plates.model_latency_ms
    );
    out.push_str(
        "<section><h2>Pumps</h2><table><tr><th>fuelling point</th><th>online</th>\
         <th>sales</th><th>last sale</th></tr>",
    );
    for p in &h.agent.fps {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            p.fp,
            yes_no(p.online),
            p.sales,
            ago(p.last_sale_t, now)
        );
    }
    out.push_str(
        "</table><table><tr><th>sale source</th><th>up</th><th>sent</th><th>received</th>\
         <th>errors</th><th>last problem</th></tr>",
    );
    for s in &h.agent.sources {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&s.name),
            yes_no(s.up),
            s.sent,
            s.received,
            s.errors,
            escape(s.last_problem.as_deref().unwrap_or("-"))
        );
    }
    let _ = write!(
        out,
        "</table></section><section><h2>To HQ</h2><table>\
         <tr><th>outbox depth</th><td>{}</td></tr>\
         <tr><th>oldest record not at HQ</th><td>{}</td></tr>\
         <tr><th>writes waiting for the disk</th><td>{}</td></tr>\
         <tr><th>uplink</th><td>{}</td></tr>\
         <tr><th>published / acknowledged</th><td>{} / {}</td></tr>\
         <tr><th>reconnects</th><td>{}</td></tr>\
         <tr><th>disk free</th><td>{}</td></tr></table></section></main>",
        h.outbox_depth.map_or("unknown".into(), |d| d.to_string()),
        h.outbox_oldest_age_s
            .map_or("none".into(), |s| format!("{s} s old")),
        h.agent.outbox_writes_in_memory,
        if h.uplink.connected {
            "connected"
        } else {
            "not connected"
        },
        h.uplink.published,
        h.uplink.acked,
        h.uplink.reconnects,
        h.disk_free_bytes
            .map_or("unknown".into(), |b| format!("{:.1} GB", b as f64 / 1e9)),
    );
    out
}

/// The arrivals ticker: drawn by `assets/console.js` from `/api/arrivals`, live from `/live`.
pub fn arrivals(station: &str, session: &Session) -> String {
    page(
        "Arrivals",
        station,
        Some(session),
        "<main id=\"arrivals\" data-state=\"/api/arrivals\" data-live=\"/live\">\
         <p class=\"status\" id=\"live-status\">Connecting...</p>\
         <noscript>The arrivals ticker needs JavaScript.</noscript>\
         <ol id=\"ticker\" class=\"ticker\"></ol></main>",
    )
}

/// A page the user may not see, and why.
pub fn refused(station: &str, session: &Session, why: &str) -> String {
    page(
        "Not allowed",
        station,
        Some(session),
        &format!(
            "<main><p class=\"message refused\" role=\"alert\">{}</p></main>",
            escape(why)
        ),
    )
}

/// The installer's zone editor: each camera's latest picture with the zones over it, drawn and
/// edited by `assets/console.js` from `/installer/zones`.
pub fn installer(station: &str, session: &Session, cameras: &[String]) -> String {
    let mut out = format!(
        "<main id=\"installer\" data-zones=\"/installer/zones\" data-reads=\"/installer/reads\" \
         data-csrf=\"{}\">\
         <p>Drag a corner to move it; add or remove zones and give each its pump below. \
         \"Save and apply\" checks the config as check-config does, keeps the old file as a \
         backup, writes it and applies the zones at once (as a reload does). Plates read now \
         are boxed in the colour of the zone they fall in (grey: in none), for the zones as \
         drawn here, saved or not.</p>",
        escape(&session.csrf)
    );
    for camera in cameras {
        let _ = write!(
            out,
            "<section class=\"camera\" data-camera=\"{c}\"><h2>{c}</h2><div class=\"stage\">\
             <img alt=\"latest picture of {c}\" src=\"/installer/snapshot/{c}\">\
             <svg class=\"reads\" viewBox=\"0 0 1000 1000\" preserveAspectRatio=\"none\"></svg>\
             <svg class=\"zones\" viewBox=\"0 0 1000 1000\" preserveAspectRatio=\"none\"></svg></div>\
             <button type=\"button\" class=\"add-zone\">Add a zone on {c}</button></section>",
            c = escape(camera)
        );
    }
    out.push_str(
        "<section><h2>Zones</h2><table id=\"zone-list\"><tr><th>camera</th><th>pump</th>\
         <th>corners</th><th></th></tr></table>\
         <button type=\"button\" id=\"save-zones\">Save and apply</button>\
         <p id=\"save-status\" class=\"message\" role=\"status\"></p></section></main>",
    );
    page("Installer", station, Some(session), &out)
}

/// The analytics page around its figures (`charts::analytics`, already escaped).
pub fn analytics(station: &str, session: &Session, figures: &str) -> String {
    let body = format!(
        "<main class=\"analytics\"><p>From this station's own hourly figures (the same HQ \
         gets): the hour being counted so far, the closed hours of the last 7 days. Hours and \
         days are the station's.</p>{figures}</main>"
    );
    page("Analytics", station, Some(session), &body)
}

/// The recent sales, newest first, each with a form to say which car bought it.
pub fn sales(
    station: &str,
    session: &Session,
    sales: &[RecentSale],
    has_crop: &dyn Fn(uuid::Uuid, CropRole) -> bool,
    message: Option<(bool, &str)>,
) -> String {
    let mut out = String::from("<main class=\"sales\">");
    if let Some((ok, text)) = message {
        let _ = write!(
            out,
            "<p class=\"message {}\" role=\"alert\">{}</p>",
            if ok { "done" } else { "refused" },
            escape(text)
        );
    }
    if sales.is_empty() {
        out.push_str("<p>No sale since the agent started.</p>");
    } else {
        out.push_str(
            "<p>Correct a plate the matcher gave, or give one it could not: type the plate, or \
             leave it empty for \"no plate\". The correction goes to HQ with your name.</p>\
             <table><tr><th>completed</th><th>pump</th><th>nozzle</th><th>litres</th>\
             <th>amount</th><th>plate</th><th>seen</th><th>correction</th><th></th></tr>",
        );
    }
    for s in sales {
        let sale = &s.sale;
        let plate = match &sale.plate {
            Some(p) => format!(
                "<span class=\"sale-plate\">{}</span> {:.1} %",
                escape(p),
                100.0 * sale.plate_confidence
            ),
            None => "<span class=\"sale-plate none\">no plate</span>".into(),
        };
        let correction = s.correction.as_ref().map_or(String::new(), |c| {
            format!(
                "{} ({}{})",
                escape(c.plate.as_deref().unwrap_or("no plate")),
                c.source,
                c.by.as_deref()
                    .map_or(String::new(), |b| format!(": {}", escape(b)))
            )
        });
        let crops = sale_crops(s.id, sale.plate.is_some(), has_crop);
        let _ = write!(
            out,
            "<tr id=\"sale-{id}\" data-fp=\"{fp}\"><td>{t}</td><td>{fp}</td><td>{nozzle}</td>\
             <td class=\"volume\">{volume}</td><td>{amount}</td><td>{plate}</td>\
             <td class=\"crops\">{crops}</td>\
             <td class=\"correction\">{correction}</td><td>\
             <form method=\"post\" action=\"/sales/correct\" class=\"correct\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
             <input type=\"hidden\" name=\"sale_id\" value=\"{id}\">\
             <input name=\"plate\" maxlength=\"16\" placeholder=\"plate, or empty\" aria-label=\"plate\">\
             <button type=\"submit\">Correct</button></form></td></tr>",
            id = s.id,
            fp = sale.fp,
            t = clock_time(sale.completed_t),
            nozzle = sale.nozzle,
            volume = sale.volume,
            amount = sale.amount,
            csrf = escape(&session.csrf),
        );
    }
    if !sales.is_empty() {
        out.push_str("</table>");
    }
    out.push_str("</main>");
    page("Sales", station, Some(session), &out)
}

/// The crops kept behind a sale's verdict, each linked to itself at full size: the plate it
/// gave (`matched`) or the best-supported one when it gave none, and the runner-up.
fn sale_crops(
    id: uuid::Uuid,
    matched: bool,
    has_crop: &dyn Fn(uuid::Uuid, CropRole) -> bool,
) -> String {
    let mut out = String::new();
    for role in CropRole::ALL {
        if !has_crop(id, role) {
            continue;
        }
        let label = match (role, matched) {
            (CropRole::Plate, true) => "the plate given",
            (CropRole::Plate, false) => "the best guess (not given)",
            (CropRole::RunnerUp, _) => "the runner-up",
        };
        let _ = write!(
            out,
            "<a href=\"/sales/{id}/crop/{role}\" target=\"_blank\"><img class=\"crop {role}\" \
             src=\"/sales/{id}/crop/{role}\" alt=\"{label}\" title=\"{label}\" loading=\"lazy\"></a>",
            role = role.name()
        );
    }
    out
}

/// `t` as UTC `HH:MM:SS` (the station's screens show local time in the browser; this page is
/// rendered on the server).
fn clock_time(t: UnixMillis) -> String {
    let s = t.div_euclid(1000).rem_euclid(86_400);
    format!("{:02}:{:02}:{:02} UTC", s / 3600, s % 3600 / 60, s % 60)
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

fn ago(t: Option<UnixMillis>, now: UnixMillis) -> String {
    t.map_or("never".into(), |t| {
        format!("{} s ago", (now - t).max(0) / 1000)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::Role;

    #[test]
    fn everything_shown_is_escaped() {
        assert_eq!(
            escape("<script>\"a\" & 'b'</script>"),
            "&lt;script&gt;&quot;a&quot; &amp; &#39;b&#39;&lt;/script&gt;"
        );
        let session = Session {
            user: "<b>".into(),
            role: Role::Staff,
            csrf: "\"x".into(),
            expires_t: 0,
        };
        let html = forecourt("<station>", &session);
        assert!(!html.contains("<b>"));
        assert!(!html.contains("<station>"));
        assert!(html.contains("value=\"&quot;x\""));
        let html = login("s", "t", Some("<i>"));
        assert!(html.contains("&lt;i&gt;"));
    }
}
