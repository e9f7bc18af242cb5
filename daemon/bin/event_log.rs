//! The event log: tracing output written by its own thread to the log file, and copied to
//! stderr for a daemon in the foreground.

use std::{io::Write, path::Path};

/// Event log lines that may wait for the disk. A larger burst (a restart of a thousand programs
/// writes two thousand lines at once) makes the daemon wait the few milliseconds the writer
/// needs, rather than lose lines.
const EVENT_LOG_QUEUE: usize = 1024;

/// Sends tracing output to the event log file (and stderr when asked). The guard flushes the
/// logs when dropped.
pub fn start_event_log(
    logfile: &Path,
    also_stderr: bool,
) -> std::io::Result<tracing_appender::non_blocking::WorkerGuard> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(logfile)?;
    let sink: Box<dyn std::io::Write + Send> = if also_stderr {
        Box::new(AlsoStderr(file))
    } else {
        Box::new(file)
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
    Ok(guard)
}

/// The event log file, with each line copied to stderr (the foreground daemon's terminal).
/// The file decides success: a closed terminal must not stop the log.
struct AlsoStderr(std::fs::File);

impl Write for AlsoStderr {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        self.0.write_all(line)?;
        let _ = std::io::stderr().write_all(line);
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}
