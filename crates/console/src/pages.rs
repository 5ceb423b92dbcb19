//! The console's HTML, rendered on the server (every value escaped), and its two assets,
//! embedded in the binary. The forecourt page's tiles are drawn by `assets/console.js` from
//! `/api/fps` and kept live from `/live`; without scripts it says so.

use std::fmt::Write;

use forecourt_events::UnixMillis;
use station::health::LocalHealth;

use crate::auth::Session;

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
            "<nav><a href=\"/\">Forecourt</a> <a href=\"/health\">Health</a>\
             <form method=\"post\" action=\"/logout\" class=\"logout\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
             <span class=\"user\">{} ({:?})</span> <button type=\"submit\">Log out</button></form></nav>",
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
