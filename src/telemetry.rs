//! Logging set-up: `tracing` lines to stdout (the host turns stderr lines into Errors),
//! no ANSI colours, verbosity from `RUST_LOG` (default `info`): a level (`warn`) and/or
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
//! control characters escaped, so no value can break a line or fake another field.

use std::cell::{Cell, RefCell};
use std::fmt::{self, Write as _};
use std::io::{self, Write};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

/// Longest time a line waits in memory before it is written.
pub const BATCH_WINDOW: Duration = Duration::from_millis(1);

/// Buffered bytes beyond which loggers write to stdout themselves (back-pressure).
pub const MAX_PENDING_BYTES: usize = 1024 * 1024;

/// Installs the global subscriber. Safe to call more than once (later calls do nothing).
pub fn init() {
    let _ = tracing_subscriber::registry()
        .with(filter(std::env::var("RUST_LOG").ok().as_deref()))
        .with(tracing_subscriber::fmt::layer().with_writer(BatchedStdout).with_ansi(false).event_format(Logfmt))
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

/// The default format's timestamp (`2026-01-02T03:04:05.678901Z`, UTC), with the date and
/// time of day formatted once per second per thread instead of on every line.
#[derive(Debug, Clone, Copy)]
struct Timestamp;

impl FormatTime for Timestamp {
    fn format_time(&self, w: &mut Writer<'_>) -> fmt::Result {
        thread_local! {
            static SECOND: Cell<(u64, [u8; 19])> = const { Cell::new((u64::MAX, [0; 19])) };
        }
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
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
        let mut line = [0u8; 27];
        line[..19].copy_from_slice(&date_time);
        line[19] = b'.';
        digits(&mut line[20..26], u64::from(now.subsec_micros()));
        line[26] = b'Z';
        w.write_str(std::str::from_utf8(&line).map_err(|_| fmt::Error)?)
    }
}

/// The event format (see the module documentation). It writes straight into the line
/// buffer: no per-field `format!`, and `&str` and integer fields skip `fmt` altogether,
/// which made the per-request decision line about four times cheaper than the default
/// format's.
#[derive(Debug, Clone, Copy)]
pub struct Logfmt;

impl<S, N> FormatEvent<S, N> for Logfmt
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, _: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        Timestamp.format_time(&mut writer)?;
        writer.write_str(match *event.metadata().level() {
            Level::ERROR => " ERROR",
            Level::WARN => "  WARN",
            Level::INFO => "  INFO",
            Level::DEBUG => " DEBUG",
            Level::TRACE => " TRACE",
        })?;
        let mut fields = Fields { writer, result: Ok(()) };
        event.record(&mut fields);
        fields.result?;
        fields.writer.write_char('\n')
    }
}

/// Writes one event's fields: the message as is, the others as ` key=value`.
struct Fields<'w> {
    writer: Writer<'w>,
    result: fmt::Result,
}

impl Fields<'_> {
    fn field(&mut self, field: &Field, value: &str) {
        if self.result.is_ok() {
            self.result = write_field(&mut self.writer, field.name(), value);
        }
    }
}

/// ` message` (as is unless it holds characters that need escaping) or ` key=value`.
fn write_field(w: &mut Writer<'_>, name: &str, value: &str) -> fmt::Result {
    w.write_char(' ')?;
    if name == "message" && !value.chars().any(needs_escape) {
        return w.write_str(value);
    }
    if name != "message" {
        w.write_str(name)?;
        w.write_char('=')?;
    }
    write_value(w, value)
}

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.field(field, value);
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        let mut text = [0u8; 20];
        let len = decimal(&mut text, value);
        self.field(field, std::str::from_utf8(&text[20 - len..]).unwrap_or("?"));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        if let Ok(value) = u64::try_from(value) {
            return self.record_u64(field, value);
        }
        self.record_debug(field, &value);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.field(field, if value { "true" } else { "false" });
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        thread_local! {
            static SCRATCH: RefCell<String> = const { RefCell::new(String::new()) };
        }
        SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
            Ok(mut text) => {
                text.clear();
                let _ = write!(text, "{value:?}");
                self.field(field, &text);
                if text.capacity() > 4096 {
                    *text = String::new();
                }
            }
            // A `Debug` impl that logs while being formatted: no shared buffer then.
            Err(_) => self.field(field, &format!("{value:?}")),
        });
    }
}

/// A logfmt value: as is when it is plain printable ASCII without `"`, `=` or `\\`,
/// otherwise quoted and escaped.
fn write_value(w: &mut Writer<'_>, value: &str) -> fmt::Result {
    let plain = !value.is_empty() && value.bytes().all(|b| b.is_ascii_graphic() && !matches!(b, b'"' | b'=' | b'\\'));
    if plain {
        return w.write_str(value);
    }
    w.write_char('"')?;
    let mut rest = value;
    while let Some((at, c)) = rest.char_indices().find(|&(_, c)| needs_escape(c)) {
        w.write_str(&rest[..at])?;
        match c {
            '"' => w.write_str("\\\"")?,
            '\\' => w.write_str("\\\\")?,
            '\n' => w.write_str("\\n")?,
            '\r' => w.write_str("\\r")?,
            '\t' => w.write_str("\\t")?,
            c => write!(w, "\\u{{{:04x}}}", u32::from(c))?,
        }
        rest = &rest[at + c.len_utf8()..];
    }
    w.write_str(rest)?;
    w.write_char('"')
}

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

/// Writes `value` as zero-padded decimal filling `out`.
fn digits(out: &mut [u8], mut value: u64) {
    for byte in out.iter_mut().rev() {
        *byte = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

/// `YYYY-MM-DDTHH:MM:SS` for Unix seconds (proleptic Gregorian calendar, UTC).
fn date_time(unix: u64) -> [u8; 19] {
    let (days, rest) = (unix / 86_400, unix % 86_400);
    // Days to civil date (H. Hinnant's algorithm), era-based from 0000-03-01.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
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

/// `MakeWriter` for the batched stdout.
#[derive(Debug, Clone, Copy)]
struct BatchedStdout;

/// One event's writer: the formatter writes the whole line with one `write_all`.
#[derive(Debug)]
struct LineWriter(Option<&'static Batch>);

impl Write for LineWriter {
    fn write(&mut self, line: &[u8]) -> io::Result<usize> {
        match self.0 {
            Some(batch) => batch.append(line).map(|()| line.len()),
            None => io::stdout().write(line),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for BatchedStdout {
    type Writer = LineWriter;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter(Batch::get())
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
        let reference = || {
            let mut text = String::new();
            tracing_subscriber::fmt::time::SystemTime.format_time(&mut Writer::new(&mut text)).unwrap();
            text
        };
        let before = reference();
        let mut line = String::new();
        Timestamp.format_time(&mut Writer::new(&mut line)).unwrap();
        let after = reference();
        assert_eq!(line.len(), before.len(), "{line} vs {before}");
        assert!(line[..19] == before[..19] || line[..19] == after[..19], "{line} vs {before}/{after}");
        assert!(line.ends_with('Z') && line.as_bytes()[19] == b'.');
    }

    /// Lines formatted by [`Logfmt`] for the events `emit` sends.
    fn formatted(emit: impl FnOnce()) -> Vec<String> {
        use std::sync::Arc;
        #[derive(Clone, Default)]
        struct Capture(Arc<Mutex<Vec<u8>>>);
        impl Write for Capture {
            fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(bytes);
                Ok(bytes.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let capture = Capture::default();
        let writer = capture.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .with_max_level(Level::TRACE)
            .event_format(Logfmt)
            .finish();
        tracing::subscriber::with_default(subscriber, emit);
        let text = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
        text.lines().map(|line| line[27..].to_owned()).collect()
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
        });
        assert_eq!(
            lines,
            [
                "  INFO auth decision sub=\"a\\nb\\\" fake=1\" kid=\"x=y\" iss=\"caf\u{e9}\\u{2028}\\r\\t\\u{001b}\\\\\"",
                r#"  INFO "two\nlines""#,
            ]
        );
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
