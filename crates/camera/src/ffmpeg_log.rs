//! FFmpeg's own log through `tracing`. By default FFmpeg (inside OpenCV's videoio) writes its
//! messages straight to stderr, raw lines such as `[tcp @ 0x7ff6c00040c0] Connection to tcp://...
//! failed` beside the structured log, every time an unreachable camera is retried. [`install`]
//! gives FFmpeg a log callback that turns each message into an event with target `ffmpeg`:
//! FFmpeg's errors (and fatal errors) as warnings, its warnings at debug (`RUST_LOG=ffmpeg=debug`
//! shows them), everything below dropped; the `[name @ 0x...]` prefix becomes a `context` field,
//! a message logged on a camera's capture thread gets a `camera` field, the trailing newline goes,
//! and URL credentials are redacted as in our own logs.
//!
//! libavutil is not linked at build time (the link line stays OpenCV's, the aarch64 cross build's
//! too): `av_log_set_callback` and `av_log_format_line2` are looked up at run time, with dlsym, in
//! the libavutil that OpenCV's videoio already brought into the process. Where they are not there,
//! nothing is installed (said once at debug) and FFmpeg keeps its own stderr output.
//!
//! OpenCV 4.x (`cap_ffmpeg_impl.hpp`, Debian 12 has 4.6) sets FFmpeg's log level to errors on its
//! FFmpeg set-up and sets a log callback of its own only when `OPENCV_FFMPEG_DEBUG` or
//! `OPENCV_FFMPEG_LOGLEVEL` is in the environment: then FFmpeg's log is left to OpenCV, as asked. Otherwise ours is installed
//! before the first FFmpeg open and once more after it, in case an OpenCV build does set one then.

use std::borrow::Cow;
use std::cell::RefCell;
use std::sync::Once;

use tracing::{debug, warn};

use crate::redact::redact_credentials;

/// Installs the callback, once per process; call before a capture opens FFmpeg.
pub(crate) fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| set_callback(true));
}

/// Sets the callback again after the first FFmpeg open has returned (whether or not it opened),
/// in case that open (OpenCV's one-time FFmpeg set-up) replaced it. Once per process.
pub(crate) fn after_first_open() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| set_callback(false));
}

thread_local! {
    /// The camera whose capture runs on this thread, if any.
    static CAMERA: RefCell<Option<Box<str>>> = const { RefCell::new(None) };
}

/// Names the camera that this (capture) thread serves: what FFmpeg logs on it names the camera.
/// FFmpeg's own threads (decoding) name none.
pub(crate) fn this_thread_serves(camera: &str) {
    CAMERA.with(|c| *c.borrow_mut() = Some(camera.into()));
}

fn set_callback(first: bool) {
    let opencv_debug = ["OPENCV_FFMPEG_DEBUG", "OPENCV_FFMPEG_LOGLEVEL"]
        .into_iter()
        .find(|v| std::env::var_os(v).is_some());
    if let Some(var) = opencv_debug {
        if first {
            debug!(target: "ffmpeg", "{var} is set: FFmpeg's log is left to OpenCV");
        }
        return;
    }
    match hook::set() {
        Ok(()) if first => debug!(target: "ffmpeg", "FFmpeg's log goes through tracing"),
        Ok(()) => {}
        Err(why) if first => debug!(target: "ffmpeg", "FFmpeg's log stays on stderr: {why}"),
        Err(_) => {}
    }
}

/// What a message of an FFmpeg level becomes.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Level {
    /// `AV_LOG_PANIC`, `AV_LOG_FATAL`, `AV_LOG_ERROR`: a warning.
    Error,
    /// `AV_LOG_WARNING`: debug.
    Warning,
}

impl Level {
    /// An FFmpeg level (`AV_LOG_*`, in its low byte; FFmpeg may carry colour flags above it), or
    /// `None` for what is dropped: `AV_LOG_QUIET` (negative), and `AV_LOG_INFO` (32) and all that
    /// is more verbose.
    fn of(level: i32) -> Option<Level> {
        if level < 0 {
            return None;
        }
        match level & 0xff {
            0..=16 => Some(Level::Error),
            17..=24 => Some(Level::Warning),
            _ => None,
        }
    }

    /// Whether the subscriber wants it: checked before FFmpeg formats anything.
    fn enabled(self) -> bool {
        match self {
            Level::Error => tracing::enabled!(target: "ffmpeg", tracing::Level::WARN),
            Level::Warning => tracing::enabled!(target: "ffmpeg", tracing::Level::DEBUG),
        }
    }
}

/// `[rtsp @ 0x55d0c0a8] [tcp @ 0x56e0] text` -> `(Some("tcp"), "text")`: FFmpeg's prefix names
/// the component that logged (after its parents) and its address, which means nothing in a log.
fn split_context(line: &str) -> (Option<&str>, &str) {
    let mut context = None;
    let mut rest = line;
    while let Some(inner) = rest.strip_prefix('[') {
        let Some(close) = inner.find("] ") else {
            break;
        };
        let Some((name, _address)) = inner[..close].split_once(" @ ") else {
            break;
        };
        context = Some(name);
        rest = &inner[close + 2..];
    }
    (context, rest)
}

/// One line as FFmpeg formatted it (prefix included) -> the event, or `None` when it is empty.
fn event(line: &[u8]) -> Option<(Option<&str>, Cow<'_, str>)> {
    let line = match std::str::from_utf8(line) {
        Ok(line) => line,
        // Up to the first byte that is not UTF-8 (FFmpeg cuts a long line to the buffer, maybe
        // inside a character).
        Err(e) => std::str::from_utf8(&line[..e.valid_up_to()]).unwrap_or_default(),
    };
    let (context, message) = split_context(line);
    let message = message.trim_end();
    (!message.is_empty()).then(|| (context, redact_credentials(message)))
}

fn forward(level: Level, line: &[u8]) {
    let Some((context, message)) = event(line) else {
        return;
    };
    let emit = |camera: Option<&str>| match level {
        Level::Error => warn!(target: "ffmpeg", camera, context, "{message}"),
        Level::Warning => debug!(target: "ffmpeg", camera, context, "{message}"),
    };
    // try_with and try_borrow: no panic even on a thread whose thread-locals are going away.
    let named = CAMERA.try_with(|c| match c.try_borrow() {
        Ok(camera) => emit(camera.as_deref()),
        Err(_) => emit(None),
    });
    if named.is_err() {
        emit(None);
    }
}

/// The C side: finding libavutil's functions and the callback FFmpeg calls. Built only for the
/// targets whose `va_list` passing is described below; elsewhere FFmpeg keeps its stderr output.
#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
#[allow(unsafe_code)]
mod hook {
    use std::ffi::{c_char, c_int, c_void};
    use std::panic::{catch_unwind, AssertUnwindSafe};
    use std::sync::OnceLock;

    use super::{forward, Level};

    // FFmpeg's `va_list` parameters are declared as `*mut c_void`, passed through untouched. Rust
    // has no stable `va_list` type, and on the two targets this module is built for, a `va_list`
    // argument is, at the ABI level, exactly one pointer:
    // - x86_64 (System V): `va_list` is `__va_list_tag[1]`, an array, so a `va_list` parameter is
    //   a pointer to the caller's `__va_list_tag`.
    // - aarch64 Linux (AAPCS64): `va_list` is a 32-byte struct, and a composite argument larger
    //   than 16 bytes is passed as a pointer to a copy that the caller made.
    // Handing the pointer we received to `av_log_format_line2`, whose `va_list` parameter is
    // passed the same way, is what C does when a function passes its `va_list` on: the callee
    // consumes it, and we never touch it again (nor read through it ourselves). Other ABIs (Apple
    // arm64's `char *`, 32-bit targets, ...) may differ, hence the `cfg` above.

    /// `void (*)(void *avcl, int level, const char *fmt, va_list vl)`
    type LogCallback = unsafe extern "C" fn(*mut c_void, c_int, *const c_char, *mut c_void);
    /// `void av_log_set_callback(void (*callback)(void *, int, const char *, va_list))`
    type SetCallback = unsafe extern "C" fn(LogCallback);
    /// `int av_log_format_line2(void *ptr, int level, const char *fmt, va_list vl, char *line,
    /// int line_size, int *print_prefix)`: like snprintf, the length the whole line needs, or a
    /// negative error.
    type FormatLine = unsafe extern "C" fn(
        *mut c_void,
        c_int,
        *const c_char,
        *mut c_void,
        *mut c_char,
        c_int,
        *mut c_int,
    ) -> c_int;

    struct AvUtil {
        set_callback: SetCallback,
        format_line: FormatLine,
    }

    /// libavutil's functions, looked up once.
    fn avutil() -> Option<&'static AvUtil> {
        static AVUTIL: OnceLock<Option<AvUtil>> = OnceLock::new();
        AVUTIL
            .get_or_init(|| {
                // SAFETY: dlsym only looks a NUL-terminated name up in the process's global scope.
                let (set, format) = unsafe {
                    (
                        libc::dlsym(libc::RTLD_DEFAULT, c"av_log_set_callback".as_ptr()),
                        libc::dlsym(libc::RTLD_DEFAULT, c"av_log_format_line2".as_ptr()),
                    )
                };
                if set.is_null() || format.is_null() {
                    return None;
                }
                // SAFETY: these are libavutil's functions of these names, whose C signatures
                // (stable since libavutil 55, FFmpeg 3.0; Debian 12 has 57) the types spell out.
                Some(unsafe {
                    AvUtil {
                        set_callback: std::mem::transmute::<*mut c_void, SetCallback>(set),
                        format_line: std::mem::transmute::<*mut c_void, FormatLine>(format),
                    }
                })
            })
            .as_ref()
    }

    /// Makes `callback` FFmpeg's log callback.
    pub(super) fn set() -> Result<(), &'static str> {
        let av = avutil().ok_or("av_log_set_callback or av_log_format_line2 not found")?;
        // SAFETY: `callback` has the signature FFmpeg calls (see `LogCallback`), may be called
        // from any thread, and stays valid for the life of the process.
        unsafe { (av.set_callback)(callback) };
        Ok(())
    }

    /// Called by FFmpeg, from whichever thread logs, for every message of every level. Cheap
    /// checks first; the line is formatted into a buffer on the stack; nothing unwinds into C.
    unsafe extern "C" fn callback(
        avcl: *mut c_void,
        level: c_int,
        fmt: *const c_char,
        vl: *mut c_void,
    ) {
        let _ = catch_unwind(AssertUnwindSafe(|| {
            let Some(ours) = Level::of(level) else {
                return;
            };
            if fmt.is_null() || !ours.enabled() {
                return;
            }
            let Some(av) = avutil() else {
                return;
            };
            let mut line = [0u8; 1024];
            // Every message with its `[name @ 0x...]` prefix: each becomes an event of its own.
            let mut print_prefix: c_int = 1;
            // SAFETY: FFmpeg's own arguments, passed on unchanged (see `LogCallback` on `vl`);
            // a buffer of the size given; a valid int. It writes a NUL-terminated line.
            let n = unsafe {
                (av.format_line)(
                    avcl,
                    level,
                    fmt,
                    vl,
                    line.as_mut_ptr().cast(),
                    line.len() as c_int,
                    &mut print_prefix,
                )
            };
            if n < 0 {
                return;
            }
            let len = line.iter().position(|&b| b == 0).unwrap_or(line.len());
            forward(ours, &line[..len]);
        }));
    }
}

#[cfg(not(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
)))]
mod hook {
    pub(super) fn set() -> Result<(), &'static str> {
        Err("not hooked on this target (its va_list passing is not known to be a pointer)")
    }
}

#[cfg(test)]
mod tests {
    use super::{event, split_context, Level};

    #[test]
    fn levels() {
        assert_eq!(Level::of(-8), None); // AV_LOG_QUIET
        assert_eq!(Level::of(0), Some(Level::Error)); // AV_LOG_PANIC
        assert_eq!(Level::of(8), Some(Level::Error)); // AV_LOG_FATAL
        assert_eq!(Level::of(16), Some(Level::Error)); // AV_LOG_ERROR
        assert_eq!(Level::of(24), Some(Level::Warning)); // AV_LOG_WARNING
        assert_eq!(Level::of(32), None); // AV_LOG_INFO
        assert_eq!(Level::of(56), None); // AV_LOG_TRACE
        assert_eq!(Level::of(0x0100 | 16), Some(Level::Error)); // AV_LOG_C(1) | AV_LOG_ERROR
    }

    #[test]
    fn prefix_becomes_context_and_credentials_go() {
        assert_eq!(
            split_context("[tcp @ 0x7ff6c00040c0] Connection to tcp://h:554 failed\n"),
            (Some("tcp"), "Connection to tcp://h:554 failed\n")
        );
        assert_eq!(
            split_context("[rtsp @ 0x1] [tcp @ 0x2] text"),
            (Some("tcp"), "text")
        );
        assert_eq!(
            split_context("[not a prefix] text"),
            (None, "[not a prefix] text")
        );
        assert_eq!(split_context("plain"), (None, "plain"));
        let (context, message) =
            event(b"[rtsp @ 0x55] method DESCRIBE failed: rtsp://admin:pw@10.0.0.5/live\n")
                .unwrap();
        assert_eq!(context, Some("rtsp"));
        assert_eq!(message, "method DESCRIBE failed: rtsp://***@10.0.0.5/live");
        assert!(event(b"[tcp @ 0x1] \n").is_none());
        assert!(event(b"").is_none());
        // A line cut inside a character keeps what came before it.
        let (_, message) = event("caf\u{e9}".as_bytes().split_last().unwrap().1).unwrap();
        assert_eq!(message, "caf");
    }
}
