//! Credentials out of logs: camera URLs carry them (`rtsp://user:pass@host/...`), and both our own
//! log lines and FFmpeg's (forwarded by `ffmpeg_log`) may quote a URL.

use std::borrow::Cow;

/// `rtsp://user:pass@host/path` -> `rtsp://***@host/path`: the user info of a URL (everything
/// between `://` and the last `@` before the path) never reaches a log. Every URL in the text is
/// redacted so (a log line may quote several); other text is unchanged. When in doubt it hides
/// more: the user info is taken to run to the path, query or fragment, or the end of the text, so
/// a password with a space in it is hidden whole.
pub fn redact_credentials(text: &str) -> Cow<'_, str> {
    let mut out: Option<String> = None;
    // `text[done..]` is still to be copied to `out`; `from` is where the next `://` is looked for.
    let (mut done, mut from) = (0, 0);
    while let Some(found) = text[from..].find("://") {
        let authority_start = from + found + 3;
        let rest = &text[authority_start..];
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        match rest[..authority_end].rfind('@') {
            Some(at) => {
                let out = out.get_or_insert_with(|| String::with_capacity(text.len()));
                out.push_str(&text[done..authority_start]);
                out.push_str("***");
                done = authority_start + at;
                from = authority_start + authority_end;
            }
            // Nothing to hide here; a `://` inside what looked like user info is looked at next.
            None => from = authority_start,
        }
    }
    match out {
        Some(mut out) => {
            out.push_str(&text[done..]);
            out.into()
        }
        None => text.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact_credentials;

    #[test]
    fn every_url_in_a_line_loses_its_user_info() {
        let cases = [
            (
                "rtsp://admin:s3cr@t@10.0.0.5:554/live",
                "rtsp://***@10.0.0.5:554/live",
            ),
            (
                "Opening rtsp://u:p@cam/a then http://v:q@cam2?x=1 and rtsp://cam3/b@c",
                "Opening rtsp://***@cam/a then http://***@cam2?x=1 and rtsp://cam3/b@c",
            ),
            (
                "http://u:p@cam/redirect?to=http://x:y@z/",
                "http://***@cam/redirect?to=http://***@z/",
            ),
            (
                "Connection to tcp://127.0.0.1:554?timeout=0 failed: Connection refused",
                "Connection to tcp://127.0.0.1:554?timeout=0 failed: Connection refused",
            ),
            ("rtsp://user:pa ss@cam/x", "rtsp://***@cam/x"),
            ("rtsp://user:pass@cam", "rtsp://***@cam"),
            ("no url @ all", "no url @ all"),
            ("://@", "://***@"),
            ("a://b://c:d@e/", "a://b://***@e/"),
            ("", ""),
        ];
        for (text, shown) in cases {
            assert_eq!(redact_credentials(text), shown, "{text}");
        }
    }
}
