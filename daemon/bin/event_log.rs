//! The event log: tracing output written by its own thread to the log file, and copied to
//! stderr for a daemon in the foreground.

use std::{io::Write, path::Path, sync::Arc};

use taskmaster::output::{self, Capture};

/// Event log lines that may wait for the disk. A larger burst (a restart of a thousand programs
/// writes two thousand lines at once) makes the daemon wait the few milliseconds the writer
/// needs, rather than lose lines.
const EVENT_LOG_QUEUE: usize = 1024;

/// Sends tracing output to the event log file (and stderr when asked), through a capture so
/// that MainTail can follow it and SIGUSR1 reopen it. The guard flushes the logs when dropped.
pub fn start_event_log(
    logfile: &Path,
    also_stderr: bool,
) -> std::io::Result<(tracing_appender::non_blocking::WorkerGuard, Arc<Capture>)> {
    let capture = output::event_log(logfile.to_path_buf());
    // Opened now, so that a log that cannot be written stops the start.
    capture.reopen()?;
    let sink = Lines {
        capture: capture.clone(),
        also_stderr,
    };
    // One writer thread keeps the daemon's own work off the disk and the terminal. Its queue
    // is allocated up front (the default of 128k lines costs 4 MB); when the writer falls this
    // far behind, the daemon waits rather than lose an event line.
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .buffered_lines_limit(EVENT_LOG_QUEUE)
        .lossy(false)
        .thread_name("event-log")
        .finish(sink);
    tracing_subscriber::fmt()
        .with_ansi(false)
        .with_target(false)
        .with_max_level(tracing::Level::INFO)
        .with_writer(writer)
        .init();
    Ok((guard, capture))
}

/// Each line goes to the event log's capture (its file and followers) and, for a daemon in
/// the foreground, to stderr. The file decides success: a closed terminal must not stop the
/// log.
struct Lines {
    capture: Arc<Capture>,
    also_stderr: bool,
}

impl Write for Lines {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        self.capture.take(line);
        if self.also_stderr {
            let _ = std::io::stderr().write_all(line);
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
