//! Log lines go to stderr through a bounded queue and one writer thread, so
//! a log sink that fails (a pipe whose reader is gone, a full disk, a
//! terminal that stops reading) never touches serving: a request formats its
//! line into a buffer and moves on. Lines the queue cannot take, or the sink
//! refuses, are dropped and counted (`clickledger_log_lines_dropped_total`);
//! nothing here ever panics or writes anywhere else.

use std::io::Write;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::OnceLock;

use tracing_subscriber::fmt::MakeWriter;

/// Lines that may wait for the sink: at ~200 bytes a line, under 2 MB.
const QUEUE_LINES: usize = 8192;

/// The writer `tracing_subscriber` formats each event into.
#[derive(Clone)]
pub struct LossyStderr {
    lines: SyncSender<Vec<u8>>,
}

impl LossyStderr {
    /// Starts the writer thread (once per process).
    pub fn start() -> Self {
        static SENDER: OnceLock<SyncSender<Vec<u8>>> = OnceLock::new();
        let lines = SENDER
            .get_or_init(|| {
                let (tx, rx) = sync_channel(QUEUE_LINES);
                let spawned =
                    std::thread::Builder::new().name("log-writer".into()).spawn(move || drain(rx, std::io::stderr()));
                if spawned.is_err() {
                    crate::metrics::log_lines_dropped(1);
                }
                tx
            })
            .clone();
        Self { lines }
    }
}

/// Writes queued lines to `sink` until every sender is gone; a failed write
/// loses that line only.
fn drain(lines: Receiver<Vec<u8>>, mut sink: impl Write) {
    for line in lines {
        if sink.write_all(&line).and_then(|_| sink.flush()).is_err() {
            crate::metrics::log_lines_dropped(1);
        }
    }
}

/// One event's line; queued when the formatter is done with it.
pub struct Line {
    buf: Vec<u8>,
    lines: SyncSender<Vec<u8>>,
}

impl Write for Line {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        match self.lines.try_send(std::mem::take(&mut self.buf)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => crate::metrics::log_lines_dropped(1),
        }
    }
}

impl<'a> MakeWriter<'a> for LossyStderr {
    type Writer = Line;

    fn make_writer(&'a self) -> Line {
        Line { buf: Vec::with_capacity(256), lines: self.lines.clone() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sink that refuses every write, as a closed pipe or a full disk does.
    struct Broken;

    impl Write for Broken {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::Error::from(std::io::ErrorKind::BrokenPipe))
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Err(std::io::Error::from(std::io::ErrorKind::BrokenPipe))
        }
    }

    #[test]
    fn a_broken_sink_loses_lines_and_nothing_else() {
        let (tx, rx) = sync_channel(4);
        let writer = std::thread::spawn(move || drain(rx, Broken));
        for _ in 0..3 {
            let mut line = Line { buf: Vec::new(), lines: tx.clone() };
            line.write_all(b"a line\n").unwrap();
        }
        drop(tx);
        writer.join().expect("the writer thread never panics");
    }

    #[test]
    fn a_full_queue_drops_the_line_instead_of_waiting() {
        let (tx, _rx) = sync_channel(1);
        for _ in 0..3 {
            let mut line = Line { buf: Vec::new(), lines: tx.clone() };
            line.write_all(b"x\n").unwrap();
        }
    }
}
