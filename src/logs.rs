//! Where an app's [`Logger`](crate::extract::Logger) lines go, with their level. In
//! invocation mode they go in the invocation's `Logs`, which the host writes one by one
//! with `LogInformation` (`DefaultHttpWorkerService.ProcessLogsFromHttpResponse`): it
//! cannot carry a level, so a warning or error keeps it in the text (`[Warning] ...`,
//! `[Error] ...`). The host reads `Logs` only from a 2xx answer, so when an invocation
//! answers otherwise its lines are written to stdout/stderr instead (with the function and
//! the ids of [`Correlation`]), as are all lines outside invocation mode: info to stdout,
//! which the host logs as Information, warnings and errors to stderr, which it logs as
//! Warning when the line contains "warn" and as Error otherwise
//! (`WorkerProcess.ParseErrorMessageAndLog`, with `useStdErrorStreamForErrorsOnly` on, its
//! default). See [`crate::telemetry`] for the stderr route.

use std::sync::{Arc, Mutex, PoisonError};

use crate::correlation::Correlation;

/// The `tracing` target of app log lines written to stdout/stderr (`RUST_LOG` can filter
/// it: `azfn_auth::logger=warn`).
pub const LOGGER_TARGET: &str = "azfn_auth::logger";

/// A [`Logger`](crate::extract::Logger) line's level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    /// Information.
    Info,
    /// Warning.
    Warn,
    /// Error.
    Error,
}

impl LogLevel {
    /// The prefix kept in the text of an invocation's `Logs` entry (the host logs every entry
    /// as Information): none for info, `.NET`'s level names for the others.
    pub fn prefix(self) -> &'static str {
        match self {
            Self::Info => "",
            Self::Warn => "[Warning] ",
            Self::Error => "[Error] ",
        }
    }
}

/// One line an app logged during an invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) level: LogLevel,
    pub(crate) text: String,
}

impl Entry {
    /// The line as an entry of the invocation's `Logs`.
    pub(crate) fn for_host(&self) -> String {
        let prefix = self.level.prefix();
        if prefix.is_empty() {
            return self.text.clone();
        }
        let mut line = String::with_capacity(prefix.len() + self.text.len());
        line.push_str(prefix);
        line.push_str(&self.text);
        line
    }
}

/// Where [`Logger`](crate::extract::Logger) lines go in invocation mode.
pub(crate) type LogSink = Arc<Mutex<Vec<Entry>>>;

/// Takes every line from `sink`.
pub(crate) fn drain(sink: &LogSink) -> Vec<Entry> {
    std::mem::take(&mut *sink.lock().unwrap_or_else(PoisonError::into_inner))
}

/// Writes one app line to stdout (info) or stderr (warn, error) with the function and ids.
pub(crate) fn to_stdio(function: &str, correlation: &Correlation, level: LogLevel, text: &str) {
    let (invocation_id, trace_id, parent_id) =
        (correlation.invocation_id(), correlation.trace_id(), correlation.parent_id());
    match level {
        LogLevel::Info => tracing::info!(
            target: LOGGER_TARGET,
            message = text,
            function,
            invocation_id,
            trace_id,
            parent_id
        ),
        LogLevel::Warn => tracing::warn!(
            target: LOGGER_TARGET,
            message = text,
            function,
            invocation_id,
            trace_id,
            parent_id
        ),
        LogLevel::Error => tracing::error!(
            target: LOGGER_TARGET,
            message = text,
            function,
            invocation_id,
            trace_id,
            parent_id
        ),
    }
}

/// Writes lines the host will not read (the invocation answers non-2xx) to stdout/stderr.
pub(crate) fn rescue(function: &str, correlation: &Correlation, entries: &[Entry]) {
    for entry in entries {
        to_stdio(function, correlation, entry.level, &entry.text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_entries_keep_the_level_in_the_text() {
        let entry = |level, text: &str| Entry { level, text: text.to_owned() }.for_host();
        assert_eq!(entry(LogLevel::Info, "stock 3"), "stock 3");
        assert_eq!(entry(LogLevel::Warn, "stock low"), "[Warning] stock low");
        assert_eq!(entry(LogLevel::Error, "no stock"), "[Error] no stock");
    }
}
