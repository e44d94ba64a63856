//! The ingest job's metrics, and the small HTTP server of `--metrics-bind` that serves them as
//! `GET /metrics` in the Prometheus text exposition format.
//!
//! The committer thread counts each epoch once it is committed (lines, bytes, rows, commit
//! time, watermark); the planner reports each source's size as it polls, the committer how far
//! each source is committed. The server is one thread answering one connection at a time: a
//! scrape is small and quick, and a client that sends nothing is dropped after
//! [`READ_TIMEOUT`].
//!
//! (Named as `shared/src/metrics.rs`, the Prometheus text writer this module uses, and
//! `api/src/metrics.rs`, the API's own metrics: each crate's metrics live in its `metrics.rs`.)

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use logstats_shared::metrics::{
    Counter, Exposition, Gauge, Histogram, Kind, COMMIT_SECONDS_BUCKETS, CONTENT_TYPE,
};
use parking_lot::Mutex;

use crate::source::SourceId;

/// At most this many sources get their own `logstats_ingest_source_bytes_behind` sample (the
/// furthest behind); `logstats_ingest_bytes_behind` counts them all.
pub const MOST_SOURCES_LABELLED: usize = 100;

/// How long the server waits for a request's head.
pub const READ_TIMEOUT: Duration = Duration::from_secs(2);

/// Largest request head read; a longer one is answered 431.
const MAX_HEAD_BYTES: usize = 8 << 10;

/// A gauge value meaning "not known yet".
const UNKNOWN: i64 = i64::MIN;

/// How far one source is read.
#[derive(Debug)]
struct SourceLag {
    /// Its canonical path: the label.
    path: Arc<str>,
    /// Bytes it will have been read to: its size when last looked at (or, once it is retired,
    /// where reading it stops).
    size: u64,
    /// Bytes committed.
    committed: u64,
    /// Rotated away or truncated: forgotten once committed to `size`.
    retired: bool,
}

/// Everything `GET /metrics` reports; shared by worker 0, the committer and the server.
#[derive(Debug)]
pub struct IngestMetrics {
    /// Non-blank lines of committed epochs.
    pub lines: Counter,
    /// Lines merged into stats.
    pub accepted: Counter,
    /// Invalid lines.
    pub rejected: Counter,
    /// Valid lines older than the watermark minus the allowed lateness.
    pub late: Counter,
    /// Bytes of committed epochs.
    pub bytes: Counter,
    /// Stats rows inserted or updated.
    pub rows_written: Counter,
    /// Time of each epoch's commit, retries included.
    pub commit_duration: Histogram,
    /// Pushed batches committed and answered 200 (`--listen`).
    pub push_batches: Counter,
    /// Pushed batches answered from an earlier commit with the same `Idempotency-Key`.
    pub push_replays: Counter,
    /// Pushes refused (4xx or 5xx).
    pub push_refused: Counter,
    /// Lines received in pushed batches (blank ones too), before they are parsed.
    pub push_lines: Counter,
    /// Bytes received in pushed batches, once decompressed.
    pub push_bytes: Counter,
    /// Pushed lines of customers outside the pushing token's scope (rejected, never stored).
    pub push_rejected_scope: Counter,
    watermark: Gauge,
    last_commit: Gauge,
    sources: Mutex<BTreeMap<SourceId, SourceLag>>,
}

impl Default for IngestMetrics {
    fn default() -> Self {
        Self {
            lines: Counter::new(),
            accepted: Counter::new(),
            rejected: Counter::new(),
            late: Counter::new(),
            bytes: Counter::new(),
            rows_written: Counter::new(),
            commit_duration: Histogram::new(COMMIT_SECONDS_BUCKETS),
            push_batches: Counter::new(),
            push_replays: Counter::new(),
            push_refused: Counter::new(),
            push_lines: Counter::new(),
            push_bytes: Counter::new(),
            push_rejected_scope: Counter::new(),
            watermark: unknown(),
            last_commit: unknown(),
            sources: Mutex::new(BTreeMap::new()),
        }
    }
}

/// A gauge at [`UNKNOWN`].
fn unknown() -> Gauge {
    let gauge = Gauge::new();
    gauge.set(UNKNOWN);
    gauge
}

impl IngestMetrics {
    /// Raises the watermark (Unix seconds of event time) to `event_time`.
    pub(crate) fn watermark_at_least(&self, event_time: i64) {
        self.watermark.set_max(event_time);
    }

    /// Records a commit that ended at Unix second `now`.
    pub(crate) fn committed_at(&self, now: i64) {
        self.last_commit.set(now);
    }

    /// A source opened at `path`, committed to `offset`, `size` bytes long.
    pub(crate) fn source_opened(&self, id: SourceId, path: &str, offset: u64, size: u64) {
        self.sources.lock().insert(
            id,
            SourceLag {
                path: path.into(),
                size,
                committed: offset,
                retired: false,
            },
        );
    }

    /// Source `id` is now `size` bytes long.
    pub(crate) fn source_size(&self, id: SourceId, size: u64) {
        if let Some(source) = self.sources.lock().get_mut(&id) {
            source.size = size;
        }
    }

    /// Source `id` will be read up to `end` and no further.
    pub(crate) fn source_retired(&self, id: SourceId, end: u64) {
        let mut sources = self.sources.lock();
        if let Some(source) = sources.get_mut(&id) {
            source.size = end;
            source.retired = true;
            if source.committed >= end {
                sources.remove(&id);
            }
        }
    }

    /// Source `id` is committed up to `end`.
    pub(crate) fn source_committed(&self, id: SourceId, end: u64) {
        let mut sources = self.sources.lock();
        if let Some(source) = sources.get_mut(&id) {
            source.committed = source.committed.max(end);
            if source.retired && source.committed >= source.size {
                sources.remove(&id);
            }
        }
    }

    /// How far source `id` is committed, while it is counted.
    pub(crate) fn committed_to(&self, id: SourceId) -> Option<u64> {
        self.sources.lock().get(&id).map(|source| source.committed)
    }

    /// Bytes behind per path, the furthest behind first (sources sharing a path, such as a
    /// file rotated away and its successor, are added up), and their total.
    fn bytes_behind(&self) -> (Vec<(Arc<str>, u64)>, u64) {
        let mut by_path: BTreeMap<Arc<str>, u64> = BTreeMap::new();
        for source in self.sources.lock().values() {
            *by_path.entry(Arc::clone(&source.path)).or_default() +=
                source.size.saturating_sub(source.committed);
        }
        let total = by_path.values().sum();
        let mut paths: Vec<(Arc<str>, u64)> = by_path.into_iter().collect();
        paths.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        paths.truncate(MOST_SOURCES_LABELLED);
        (paths, total)
    }

    /// The exposition text.
    pub(crate) fn render(&self) -> String {
        let mut out = Exposition::new();
        for (name, help, counter) in [
            (
                "logstats_ingest_lines_read_total",
                "Non-blank lines read, in committed epochs.",
                &self.lines,
            ),
            (
                "logstats_ingest_lines_accepted_total",
                "Lines merged into the daily stats.",
                &self.accepted,
            ),
            (
                "logstats_ingest_lines_rejected_total",
                "Invalid lines (see --rejects).",
                &self.rejected,
            ),
            (
                "logstats_ingest_lines_late_total",
                "Valid lines older than the watermark minus the allowed lateness, not merged.",
                &self.late,
            ),
            (
                "logstats_ingest_bytes_committed_total",
                "Bytes of input in committed epochs.",
                &self.bytes,
            ),
            (
                "logstats_ingest_rows_written_total",
                "Daily stats rows inserted or updated.",
                &self.rows_written,
            ),
            (
                "logstats_ingest_push_batches_total",
                "Pushed batches (--listen) committed and answered 200.",
                &self.push_batches,
            ),
            (
                "logstats_ingest_push_replays_total",
                "Pushed batches answered with the counts of an earlier batch with the same \
                 Idempotency-Key, adding nothing.",
                &self.push_replays,
            ),
            (
                "logstats_ingest_push_refused_total",
                "Pushes answered with an error (4xx or 5xx).",
                &self.push_refused,
            ),
            (
                "logstats_ingest_push_lines_total",
                "Lines received in pushed batches, blank ones included.",
                &self.push_lines,
            ),
            (
                "logstats_ingest_push_bytes_total",
                "Bytes received in pushed batches, decompressed.",
                &self.push_bytes,
            ),
            (
                "logstats_ingest_push_rejected_scope_total",
                "Pushed lines of customers outside the token's scope: rejected, never stored.",
                &self.push_rejected_scope,
            ),
        ] {
            out.single(name, Kind::Counter, help, counter.get());
        }
        out.family(
            "logstats_ingest_commit_duration_seconds",
            Kind::Histogram,
            "Time to commit an epoch (one transaction), retries while the database is away \
             included.",
        );
        out.histogram(
            "logstats_ingest_commit_duration_seconds",
            &[],
            &self.commit_duration,
        );
        out.family(
            "logstats_ingest_watermark_seconds",
            Kind::Gauge,
            "The newest committed event time (Unix seconds): the stored watermark when the job \
             started, raised by its commits. Absent until one is known.",
        );
        let watermark = self.watermark.get();
        if watermark != UNKNOWN {
            out.sample("logstats_ingest_watermark_seconds", &[], watermark);
        }
        out.family(
            "logstats_ingest_last_commit_timestamp_seconds",
            Kind::Gauge,
            "When this job last committed an epoch (Unix seconds). Absent before its first \
             commit; a job with nothing new to read does not commit.",
        );
        let last_commit = self.last_commit.get();
        if last_commit != UNKNOWN {
            out.sample(
                "logstats_ingest_last_commit_timestamp_seconds",
                &[],
                last_commit,
            );
        }
        let (paths, total) = self.bytes_behind();
        out.single(
            "logstats_ingest_bytes_behind",
            Kind::Gauge,
            "Bytes of the followed files not yet committed (all sources).",
            total,
        );
        out.family(
            "logstats_ingest_source_bytes_behind",
            Kind::Gauge,
            "Bytes of a followed file not yet committed, by path; only the 100 furthest behind.",
        );
        for (path, behind) in &paths {
            out.sample(
                "logstats_ingest_source_bytes_behind",
                &[("path", path)],
                *behind,
            );
        }
        out.finish()
    }
}

/// Serves `GET /metrics` on `listener` from a thread of its own, until the process ends.
pub fn serve(listener: TcpListener, metrics: Arc<IngestMetrics>) -> io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            for stream in listener.incoming() {
                match stream {
                    Ok(stream) => {
                        if let Err(e) = answer(stream, &metrics) {
                            log::debug!("metrics: {e}");
                        }
                    }
                    Err(e) => {
                        // Out of file descriptors, say: do not spin.
                        log::warn!("metrics: accepting a connection: {e}");
                        std::thread::sleep(Duration::from_millis(100));
                    }
                }
            }
        })
}

/// Reads one request's head and answers it: the metrics for `GET` (or `HEAD`) `/metrics`,
/// 405 for other methods there, 404 elsewhere, 400 for what is not an HTTP request.
fn answer(mut stream: TcpStream, metrics: &IngestMetrics) -> io::Result<()> {
    stream.set_read_timeout(Some(READ_TIMEOUT))?;
    stream.set_write_timeout(Some(READ_TIMEOUT))?;
    let mut head = [0u8; MAX_HEAD_BYTES];
    let mut len = 0;
    let end = loop {
        if let Some(end) = head_end(&head[..len]) {
            break end;
        }
        if len == head.len() {
            return respond(&mut stream, "431 Request Header Fields Too Large", "", &[]);
        }
        let read = stream.read(&mut head[len..])?;
        if read == 0 {
            return Ok(());
        }
        len += read;
    };
    let line = head[..end]
        .split(|&b| b == b'\n')
        .next()
        .unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_ascii_whitespace();
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return respond(&mut stream, "400 Bad Request", "", &[]);
    };
    if !version.starts_with("HTTP/1.") {
        return respond(&mut stream, "400 Bad Request", "", &[]);
    }
    let path = target.split('?').next().unwrap_or_default();
    match (method, path) {
        ("GET", "/metrics") => respond(
            &mut stream,
            "200 OK",
            CONTENT_TYPE,
            metrics.render().as_bytes(),
        ),
        ("HEAD", "/metrics") => respond(&mut stream, "200 OK", CONTENT_TYPE, &[]),
        (_, "/metrics") => respond(
            &mut stream,
            "405 Method Not Allowed\r\nAllow: GET, HEAD",
            "",
            &[],
        ),
        _ => respond(&mut stream, "404 Not Found", "", &[]),
    }
}

/// Where the head in `bytes` ends (after its blank line), if it is complete.
fn head_end(bytes: &[u8]) -> Option<usize> {
    bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|at| at + 4)
        .or_else(|| bytes.windows(2).position(|w| w == b"\n\n").map(|at| at + 2))
}

/// Writes a response of `status` (with any extra header lines) and closes.
fn respond(
    stream: &mut TcpStream,
    status: &str,
    content_type: &str,
    body: &[u8],
) -> io::Result<()> {
    let content_type = if content_type.is_empty() {
        "text/plain; charset=utf-8"
    } else {
        content_type
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    stream.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_behind_add_up_by_path_and_forget_finished_sources() {
        let metrics = IngestMetrics::default();
        metrics.source_opened(0, "/l/a.log", 100, 150);
        metrics.source_opened(1, "/l/b.log", 0, 10);
        metrics.source_committed(1, 10);
        metrics.source_size(0, 200);
        // a.log rotated: its successor has the same path.
        metrics.source_retired(0, 180);
        metrics.source_opened(2, "/l/a.log", 0, 30);
        assert_eq!(
            metrics.bytes_behind(),
            (vec![("/l/a.log".into(), 110), ("/l/b.log".into(), 0)], 110)
        );
        metrics.source_committed(0, 180);
        assert_eq!(
            metrics.bytes_behind(),
            (vec![("/l/a.log".into(), 30), ("/l/b.log".into(), 0)], 30)
        );
        assert_eq!(
            metrics.sources.lock().len(),
            2,
            "the retired source is forgotten"
        );
    }

    #[test]
    fn only_the_sources_furthest_behind_are_labelled() {
        let metrics = IngestMetrics::default();
        for id in 0..(MOST_SOURCES_LABELLED + 50) {
            metrics.source_opened(id, &format!("/l/{id}.log"), 0, id as u64);
        }
        let text = metrics.render();
        let labelled = text
            .lines()
            .filter(|l| l.starts_with("logstats_ingest_source_bytes_behind{"))
            .count();
        assert_eq!(labelled, MOST_SOURCES_LABELLED);
        assert!(text.contains("logstats_ingest_source_bytes_behind{path=\"/l/149.log\"} 149\n"));
        assert!(!text.contains("/l/49.log"));
        let total: u64 = (0..150).sum();
        assert!(text.contains(&format!("logstats_ingest_bytes_behind {total}\n")));
    }

    #[test]
    fn unknown_gauges_are_absent() {
        let metrics = IngestMetrics::default();
        let text = metrics.render();
        assert!(text.contains("# TYPE logstats_ingest_watermark_seconds gauge\n"));
        assert!(!text.contains("\nlogstats_ingest_watermark_seconds "));
        assert!(!text.contains("\nlogstats_ingest_last_commit_timestamp_seconds "));
        metrics.watermark_at_least(1_731_146_400);
        metrics.watermark_at_least(5);
        metrics.committed_at(1_800_000_000);
        let text = metrics.render();
        assert!(text.contains("\nlogstats_ingest_watermark_seconds 1731146400\n"));
        assert!(text.contains("\nlogstats_ingest_last_commit_timestamp_seconds 1800000000\n"));
    }

    #[test]
    fn the_server_answers_metrics_and_nothing_else() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = listener.local_addr().expect("address");
        let metrics = Arc::new(IngestMetrics::default());
        metrics.lines.add(7);
        serve(listener, metrics).expect("serve");
        let ask = |request: &[u8]| {
            let mut stream = TcpStream::connect(address).expect("connect");
            stream.write_all(request).expect("send");
            let mut answer = String::new();
            stream.read_to_string(&mut answer).expect("answer");
            answer
        };
        let ok = ask(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(
            ok.contains(&format!("Content-Type: {CONTENT_TYPE}\r\n")),
            "{ok}"
        );
        assert!(
            ok.contains("\r\n\r\n# HELP logstats_ingest_lines_read_total "),
            "{ok}"
        );
        assert!(
            ok.contains("\nlogstats_ingest_lines_read_total 7\n"),
            "{ok}"
        );
        let head = ask(b"HEAD /metrics?x=1 HTTP/1.0\r\n\r\n");
        assert!(
            head.starts_with("HTTP/1.1 200 OK\r\n") && head.ends_with("\r\n\r\n"),
            "{head}"
        );
        let post = ask(b"POST /metrics HTTP/1.1\r\n\r\n");
        assert!(
            post.starts_with("HTTP/1.1 405 Method Not Allowed\r\nAllow: GET, HEAD\r\n"),
            "{post}"
        );
        assert!(ask(b"GET / HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404 "));
        assert!(ask(b"hello\r\n\r\n").starts_with("HTTP/1.1 400 "));
        // Exactly the most read, so that nothing unread makes the close a reset.
        assert!(ask(&[b'a'; MAX_HEAD_BYTES]).starts_with("HTTP/1.1 431 "));
    }
}
