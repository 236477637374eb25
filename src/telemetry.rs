//! Logging set-up: `tracing` lines to stdout (the host turns stderr lines into Errors),
//! except an app [`Logger`](crate::extract::Logger)'s warnings and errors, which go to
//! stderr so that the host records them as Warning or Error ([`crate::logs`]); no ANSI
//! colours, verbosity from `RUST_LOG` (default `info`): a level (`warn`) and/or
//! `target=level` pairs (`info,azfn_auth=debug`); an unreadable value means `info`. (Span
//! and field filters of `EnvFilter` are not supported: its regex engine was a quarter of a
//! megabyte of the binary.)
//!
//! Lines are written to stdout in batches by a background thread instead of one `write`
//! system call per line from the request path: a request only appends its line to an
//! in-memory buffer. The thread wakes when the buffer gets its first line, waits
//! [`BATCH_WINDOW`] for more, and writes them all with one call (in order). The cost: a
//! process killed with SIGKILL loses the lines of its last [`BATCH_WINDOW`] at most (the
//! platform sends SIGKILL; a normal exit calls [`flush`]). If stdout blocks (a stalled
//! reader) and [`MAX_PENDING_BYTES`] pile up, loggers write synchronously again, so lines
//! are delayed, never dropped.
//!
//! Line format ([`Logfmt`]): `<timestamp> <LEVEL> <message> key=value ...`, the layout of
//! tracing-subscriber's default format (without target and spans, which this crate does
//! not use), with values in logfmt: plain text as is, anything else (spaces, quotes,
//! `=`, control or non-ASCII characters, empty) in double quotes with `\"`, `\\` and
//! control characters escaped, so no value can break a line or fake another field. Each
//! line is built in a reused per-thread buffer: `&str` and integer fields are copied
//! without `core::fmt`, which made the per-request decision line about 2.5 times cheaper
//! than tracing-subscriber's `fmt` layer (and the binary smaller).

use std::cell::{Cell, RefCell};
use std::fmt::{self, Write as _};
use std::io::{self, Write};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

use crate::logs::LOGGER_TARGET;

/// Longest time a line waits in memory before it is written.
pub const BATCH_WINDOW: Duration = Duration::from_millis(1);

/// Buffered bytes beyond which loggers write to stdout themselves (back-pressure).
pub const MAX_PENDING_BYTES: usize = 1024 * 1024;

/// Installs the global subscriber. Safe to call more than once (later calls do nothing).
pub fn init() {
    let _ = tracing_subscriber::registry()
        .with(filter(std::env::var("RUST_LOG").ok().as_deref()))
        .with(Logfmt::new(write_line).with_stderr(write_stderr))
        .try_init();
}

/// The filter for a `RUST_LOG` value: `info` when unset, empty or unreadable.
fn filter(rust_log: Option<&str>) -> Targets {
    let info = || Targets::new().with_default(LevelFilter::INFO);
    match rust_log.map(str::trim) {
        None | Some("") => info(),
        Some(value) => value.parse().unwrap_or_else(|_| info()),
    }
}

/// Writes every buffered line to stdout now (call before a normal exit).
pub fn flush() {
    if let Some(batch) = BATCH.get() {
        let mut pending = batch.lock();
        let mut out = io::stdout().lock();
        let _ = out.write_all(&pending);
        let _ = out.flush();
        pending.clear();
    }
}

/// Hands one finished line to the batched stdout (or stdout itself if the writer thread
/// could not start).
fn write_line(line: &[u8]) {
    let _ = match Batch::get() {
        Some(batch) => batch.append(line),
        None => io::stdout().lock().write_all(line),
    };
}

/// Writes one app warning or error line to stderr (unbuffered: one `write` per line).
fn write_stderr(line: &[u8]) {
    let _ = io::stderr().lock().write_all(line);
}

/// The layer that formats each event as one logfmt line (see the module documentation)
/// and passes it to `sink`, or to `stderr` for app warnings and errors when one is given
/// ([`Logfmt::with_stderr`]).
#[derive(Debug, Clone, Copy)]
pub struct Logfmt<F, G = F> {
    sink: F,
    stderr: Option<G>,
}

impl<F: Fn(&[u8]) + Send + Sync + 'static> Logfmt<F> {
    /// A layer writing every line to `sink`.
    pub fn new(sink: F) -> Self {
        Self { sink, stderr: None }
    }
}

impl<F, G> Logfmt<F, G> {
    /// Sends the WARN and ERROR lines of target [`LOGGER_TARGET`] (an app's
    /// [`Logger`](crate::extract::Logger)) to `stderr` instead.
    pub fn with_stderr<H: Fn(&[u8]) + Send + Sync + 'static>(self, stderr: H) -> Logfmt<F, H> {
        Logfmt { sink: self.sink, stderr: Some(stderr) }
    }
}

impl<F: Fn(&[u8]), G: Fn(&[u8])> Logfmt<F, G> {
    fn write(&self, event: &Event<'_>, line: &[u8]) {
        let metadata = event.metadata();
        match &self.stderr {
            Some(stderr)
                if matches!(*metadata.level(), Level::WARN | Level::ERROR) && metadata.target() == LOGGER_TARGET =>
            {
                stderr(line)
            }
            _ => (self.sink)(line),
        }
    }
}

impl<S: Subscriber, F: Fn(&[u8]) + Send + Sync + 'static, G: Fn(&[u8]) + Send + Sync + 'static> Layer<S>
    for Logfmt<F, G>
{
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        thread_local! {
            static LINE: RefCell<String> = const { RefCell::new(String::new()) };
        }
        LINE.with(|line| match line.try_borrow_mut() {
            Ok(mut line) => {
                line.clear();
                format_event(&mut line, event);
                self.write(event, line.as_bytes());
                if line.capacity() > 64 * 1024 {
                    *line = String::new();
                }
            }
            // An event logged while another is being formatted (from a `Debug` impl; tracing
            // itself drops those today): a fresh buffer, never a panic.
            Err(_) => {
                let mut line = String::new();
                format_event(&mut line, event);
                self.write(event, line.as_bytes());
            }
        });
    }
}

/// Appends `event` as one line, `\n` included.
fn format_event(line: &mut String, event: &Event<'_>) {
    timestamp(line, SystemTime::now());
    line.push_str(match *event.metadata().level() {
        Level::ERROR => " ERROR",
        Level::WARN => "  WARN",
        Level::INFO => "  INFO",
        Level::DEBUG => " DEBUG",
        Level::TRACE => " TRACE",
    });
    event.record(&mut Fields(line));
    line.push('\n');
}

/// Writes one event's fields: the message as is, the others as ` key=value`.
struct Fields<'a>(&'a mut String);

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        write_field(self.0, field.name(), value);
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        let mut text = [0u8; 20];
        let len = decimal(&mut text, value);
        write_field(self.0, field.name(), std::str::from_utf8(&text[20 - len..]).unwrap_or("?"));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        match u64::try_from(value) {
            Ok(value) => self.record_u64(field, value),
            Err(_) => self.record_debug(field, &value),
        }
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        write_field(self.0, field.name(), if value { "true" } else { "false" });
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        thread_local! {
            static TEXT: RefCell<String> = const { RefCell::new(String::new()) };
        }
        TEXT.with(|text| match text.try_borrow_mut() {
            Ok(mut text) => {
                text.clear();
                let _ = write!(text, "{value:?}");
                write_field(self.0, field.name(), &text);
                if text.capacity() > 4096 {
                    *text = String::new();
                }
            }
            Err(_) => write_field(self.0, field.name(), &format!("{value:?}")),
        });
    }
}

/// ` message` (as is unless it holds characters that need escaping) or ` key=value`.
fn write_field(line: &mut String, name: &str, value: &str) {
    line.push(' ');
    if name == "message" {
        if value.chars().any(needs_escape) {
            write_value(line, value);
        } else {
            line.push_str(value);
        }
        return;
    }
    line.push_str(name);
    line.push('=');
    write_value(line, value);
}

/// A logfmt value: as is when it is plain printable ASCII without `"`, `=` or `\\`,
/// otherwise quoted and escaped.
fn write_value(line: &mut String, value: &str) {
    // One table lookup per byte and no early exit: every value is scanned whole anyway when
    // it is plain, which ids and names almost always are.
    let plain = !value.is_empty() && value.bytes().fold(true, |plain, b| plain & PLAIN[usize::from(b)]);
    if plain {
        return line.push_str(value);
    }
    line.push('"');
    let mut rest = value;
    while let Some((at, c)) = rest.char_indices().find(|&(_, c)| needs_escape(c)) {
        line.push_str(&rest[..at]);
        match c {
            '"' => line.push_str("\\\""),
            '\\' => line.push_str("\\\\"),
            '\n' => line.push_str("\\n"),
            '\r' => line.push_str("\\r"),
            '\t' => line.push_str("\\t"),
            c => {
                let _ = write!(line, "\\u{{{:04x}}}", u32::from(c));
            }
        }
        rest = &rest[at + c.len_utf8()..];
    }
    line.push_str(rest);
    line.push('"');
}

/// Bytes a value may hold and stay unquoted: printable ASCII except `"`, `=` and `\\`.
const PLAIN: [bool; 256] = {
    let mut plain = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        plain[b] = c.is_ascii_graphic() && c != b'"' && c != b'=' && c != b'\\';
        b += 1;
    }
    plain
};

/// Characters escaped inside a quoted value: the quote, backslash, and anything a log
/// pipeline may take for a line break or that would not display.
fn needs_escape(c: char) -> bool {
    matches!(c, '"' | '\\' | '\u{2028}' | '\u{2029}') || c.is_control()
}

/// Writes `value` in decimal at the end of `out`; returns the number of digits.
fn decimal(out: &mut [u8; 20], mut value: u64) -> usize {
    let mut at = out.len();
    loop {
        at -= 1;
        out[at] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            return out.len() - at;
        }
    }
}

/// Appends `now` as the default format's timestamp (`2026-01-02T03:04:05.678901Z`, UTC),
/// with the date and time of day formatted once per second per thread.
fn timestamp(line: &mut String, now: SystemTime) {
    thread_local! {
        static SECOND: Cell<(u64, [u8; 19])> = const { Cell::new((u64::MAX, [0; 19])) };
    }
    let now = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = now.as_secs();
    let date_time = SECOND.with(|cached| {
        let (second, text) = cached.get();
        if second == secs {
            return text;
        }
        let text = date_time(secs);
        cached.set((secs, text));
        text
    });
    let mut text = [0u8; 27];
    text[..19].copy_from_slice(&date_time);
    text[19] = b'.';
    digits(&mut text[20..26], u64::from(now.subsec_micros()));
    text[26] = b'Z';
    line.push_str(std::str::from_utf8(&text).unwrap_or("0000-00-00T00:00:00.000000Z"));
}

/// Writes `value` as zero-padded decimal filling `out`.
fn digits(out: &mut [u8], mut value: u64) {
    for byte in out.iter_mut().rev() {
        *byte = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's
/// algorithm, era-based from 0000-03-01).
pub(crate) fn civil_date(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + u64::from(month <= 2), month, day)
}

/// `YYYY-MM-DDTHH:MM:SS` for Unix seconds (proleptic Gregorian calendar, UTC).
fn date_time(unix: u64) -> [u8; 19] {
    let (days, rest) = (unix / 86_400, unix % 86_400);
    let (year, month, day) = civil_date(days);
    let mut out = *b"0000-00-00T00:00:00";
    digits(&mut out[0..4], year.min(9_999));
    digits(&mut out[5..7], month);
    digits(&mut out[8..10], day);
    digits(&mut out[11..13], rest / 3_600);
    digits(&mut out[14..16], rest / 60 % 60);
    digits(&mut out[17..19], rest % 60);
    out
}

#[derive(Debug)]
struct Batch {
    pending: Mutex<Vec<u8>>,
    wake: Condvar,
}

static BATCH: OnceLock<Batch> = OnceLock::new();

impl Batch {
    /// The buffer, with its flushing thread started on first use. `None` if the thread
    /// cannot be started (then lines are written directly, as before batching).
    fn get() -> Option<&'static Batch> {
        static STARTED: OnceLock<bool> = OnceLock::new();
        let batch =
            BATCH.get_or_init(|| Batch { pending: Mutex::new(Vec::with_capacity(64 * 1024)), wake: Condvar::new() });
        let started = *STARTED
            .get_or_init(|| std::thread::Builder::new().name("log-writer".into()).spawn(move || batch.run()).is_ok());
        started.then_some(batch)
    }

    fn lock(&self) -> MutexGuard<'_, Vec<u8>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn run(&self) {
        let mut writing = Vec::with_capacity(64 * 1024);
        loop {
            let mut pending = self.lock();
            while pending.is_empty() {
                pending = self.wake.wait(pending).unwrap_or_else(|e| e.into_inner());
            }
            drop(pending);
            std::thread::sleep(BATCH_WINDOW);
            let mut pending = self.lock();
            std::mem::swap(&mut *pending, &mut writing);
            // Take stdout before letting loggers in, so a logger that falls back to writing
            // itself queues behind this batch and lines stay in order.
            let mut out = io::stdout().lock();
            drop(pending);
            // Stdout is line-buffered: a batch ending in '\n' goes out in one write.
            let _ = out.write_all(&writing);
            let _ = out.flush();
            drop(out);
            writing.clear();
            writing.shrink_to(1024 * 1024);
        }
    }

    fn append(&self, line: &[u8]) -> io::Result<()> {
        let mut pending = self.lock();
        if pending.len() + line.len() > MAX_PENDING_BYTES {
            let mut out = io::stdout().lock();
            out.write_all(&pending)?;
            pending.clear();
            out.write_all(line)?;
            return out.flush();
        }
        let first = pending.is_empty();
        pending.extend_from_slice(line);
        drop(pending);
        if first {
            self.wake.notify_one();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Level;

    #[test]
    fn rust_log_levels_and_targets() {
        let default = filter(None);
        assert!(default.would_enable("azfn_auth", &Level::INFO));
        assert!(!default.would_enable("azfn_auth", &Level::DEBUG));
        assert!(!filter(Some("warn")).would_enable("azfn_auth::app", &Level::INFO));
        let mixed = filter(Some("info,azfn_auth=debug,hyper=off"));
        assert!(mixed.would_enable("azfn_auth::auth", &Level::DEBUG));
        assert!(!mixed.would_enable("hyper::proto", &Level::ERROR));
        assert!(mixed.would_enable("reqwest", &Level::INFO));
        assert!(filter(Some("[span{x=1}]=debug=nonsense")).would_enable("x", &Level::INFO));
        assert!(filter(Some(" ")).would_enable("x", &Level::INFO));
    }

    #[test]
    fn timestamps_match_the_default_format() {
        let cases = [
            (0, "1970-01-01T00:00:00"),
            (951_782_400, "2000-02-29T00:00:00"),
            (951_868_799, "2000-02-29T23:59:59"),
            (1_709_210_096, "2024-02-29T12:34:56"),
            (1_798_761_599, "2026-12-31T23:59:59"),
            (4_107_542_400, "2100-03-01T00:00:00"),
        ];
        for (unix, text) in cases {
            assert_eq!(std::str::from_utf8(&date_time(unix)).unwrap(), text, "{unix}");
        }
        let mut line = String::new();
        timestamp(&mut line, UNIX_EPOCH + Duration::from_micros(1_709_210_096_000_042));
        assert_eq!(line, "2024-02-29T12:34:56.000042Z");
        // The cached second is per thread and only reused for the same second.
        line.clear();
        timestamp(&mut line, UNIX_EPOCH + Duration::from_micros(1_709_210_097_999_999));
        assert_eq!(line, "2024-02-29T12:34:57.999999Z");
    }

    /// Lines formatted by [`Logfmt`] for the events `emit` sends.
    fn formatted(emit: impl FnOnce()) -> Vec<String> {
        use std::sync::Arc;
        let capture = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&capture);
        let subscriber = tracing_subscriber::registry()
            .with(Logfmt::new(move |line: &[u8]| sink.lock().unwrap().extend_from_slice(line)));
        tracing::subscriber::with_default(subscriber, emit);
        let text = String::from_utf8(capture.lock().unwrap().clone()).unwrap();
        assert!(text.ends_with('\n'), "{text}");
        text.lines()
            .map(|line| {
                assert_eq!(line.as_bytes()[19], b'.', "{line}");
                assert!(line[..27].ends_with('Z'), "{line}");
                line[27..].to_owned()
            })
            .collect()
    }

    #[test]
    fn lines_are_timestamp_level_message_and_logfmt_fields() {
        let lines = formatted(|| {
            tracing::info!(
                function = "api-a",
                outcome = "denied",
                status = 401u16,
                auth.reason = %"no bearer token",
                client_id = "-",
                duration_us = 12u64,
                "auth decision"
            );
            tracing::warn!(delta = -3i64, fresh = true, names = ?["a"], empty = "", "signing key ignored");
        });
        assert_eq!(
            lines,
            [
                "  INFO auth decision function=api-a outcome=denied status=401 auth.reason=\"no bearer token\" \
                 client_id=- duration_us=12",
                r#"  WARN signing key ignored delta=-3 fresh=true names="[\"a\"]" empty="""#,
            ]
        );
    }

    #[test]
    fn no_value_can_break_the_line_or_fake_a_field() {
        let lines = formatted(|| {
            tracing::info!(sub = "a\nb\" fake=1", kid = "x=y", iss = "caf\u{e9}\u{2028}\r\t\u{1b}\\", "auth decision");
            tracing::info!("{}", "two\nlines");
            tracing::debug!(n = 1u64, "debug");
            tracing::error!(n = 0u64, "error");
        });
        assert_eq!(
            lines,
            [
                "  INFO auth decision sub=\"a\\nb\\\" fake=1\" kid=\"x=y\" iss=\"caf\u{e9}\\u{2028}\\r\\t\\u{001b}\\\\\"",
                r#"  INFO "two\nlines""#,
                " DEBUG debug n=1",
                " ERROR error n=0",
            ]
        );
    }

    #[test]
    fn an_event_logged_while_formatting_another_cannot_corrupt_it() {
        struct Logs;
        impl fmt::Debug for Logs {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                tracing::info!(inner = ?Some(1), "nested");
                f.write_str("value")
            }
        }
        let lines = formatted(|| tracing::info!(v = ?Logs, "outer"));
        // tracing-core drops events sent while this thread's subscriber is busy.
        assert_eq!(lines, ["  INFO outer v=value"]);
    }

    #[test]
    fn lines_are_written_in_order_and_flushed() {
        let batch = Batch::get().expect("writer thread");
        // These go to the real stdout (the test harness does not capture it).
        for i in 0..3 {
            batch.append(format!("telemetry self-test line {i}\n").as_bytes()).unwrap();
        }
        flush();
        assert!(batch.lock().is_empty());
    }
}
