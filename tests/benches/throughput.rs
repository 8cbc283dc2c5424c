//! Throughput and latency figures for the release `qpsmtpd` binary, printed as one
//! markdown table that can be pasted into the README. This is not a test: it asserts
//! nothing about speed, only that the figures are honest (every message sent is in the
//! maildir).
//!
//! Run with `cargo bench -p qpsmtpd-tests`. Everything listens on 127.0.0.1 only, every
//! daemon is a [`qpsmtpd_tests::Daemon`] guard (killed with its process group on drop),
//! and the whole run takes well under three minutes on the 2-core machine. The sites
//! (config, spool, maildir) live under `/var/tmp`, on a real disk. The DNS rows resolve
//! against knot with the fixture zones ([`DnsServer`]), never the machine's resolver;
//! `QPSMTPD_BENCH_ONLY=dns` runs only those.
//!
//! Peak RSS comes from `getrusage(RUSAGE_CHILDREN)`, which is the largest RSS of any
//! child waited for so far. The bench process itself has already waited for `cargo
//! build` (in [`qpsmtpd_bin`]), so the RSS sessions run in a fresh copy of this binary
//! (re-executed with `QPSMTPD_BENCH_RSS=<config dir>`), whose only children are the
//! `qpsmtpd` processes it measures: the small session first, then the 100 MB ones.
//! Linux charges a child with the parent's peak RSS at spawn time too (the child's
//! memory before `exec` is the parent's), so the helper keeps itself small: it streams
//! the 100 MB body from one 64 KiB block instead of holding it in memory, and it reports
//! its own peak beside the figures.

use nix::sys::resource::{UsageWho, getrusage};
use qpsmtpd_core::testing::DnsServer;
use qpsmtpd_tests::{Site, count_entries, fixture, forkserver, qpsmtpd_bin, require, tcpserver};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Where the sites go: a real disk, not a possibly memory-backed /tmp.
const BENCH_PARENT: &str = "/var/tmp";

/// Sessions for the connect + EHLO + QUIT rate, and the client threads that run them.
const EHLO_SESSIONS: usize = 2000;
const EHLO_THREADS: usize = 8;
/// Sequential connections for the exec-to-banner latency.
const BANNER_CONNECTIONS: usize = 500;
/// smtp-source: messages, parallel sessions, message length.
const SOURCE_MESSAGES: usize = 2000;
const SOURCE_SESSIONS: usize = 20;
const SOURCE_LENGTH: usize = 2048;
/// The big message: 100 MiB of 78-character lines plus CRLF.
const BIG_BYTES: usize = 100 * 1024 * 1024;
const MIB: f64 = 1024.0 * 1024.0;

fn main() {
    if let Ok(config_dir) = std::env::var("QPSMTPD_BENCH_RSS") {
        rss_helper(Path::new(&config_dir));
        return;
    }
    let started = Instant::now();
    let load_before = loadavg();
    let machine = machine();
    println!("{machine}");
    let bin = qpsmtpd_bin();
    println!("binary: {}", bin.display());
    println!();

    let mut rows: Vec<Row> = Vec::new();
    // `QPSMTPD_BENCH_ONLY=dns` runs only the DNS chain rows (quicker when working on them).
    let only_dns = std::env::var("QPSMTPD_BENCH_ONLY").is_ok_and(|v| v == "dns");

    // (c) first: RSS and the 100 MB message, in a fresh helper process.
    if !only_dns {
        eprintln!("[bench] 100 MB message and session RSS ...");
        rows.extend(big_message_rows(bin));

        // (a) connect + EHLO + QUIT under tcpserver, and exec-to-banner latency.
        eprintln!("[bench] tcpserver sessions/s and banner latency ...");
        rows.extend(tcpserver_rows());

        // (b) smtp-source: messages/s into the maildir.
        eprintln!("[bench] smtp-source messages/s ...");
        rows.extend(smtp_source_rows());
    }

    // (d) the DNS and authentication chain against a real DNS server.
    eprintln!("[bench] DNS chain messages/s ...");
    rows.extend(dns_chain_rows());

    println!("| measurement | figure | target | how it was measured |");
    println!("|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {} | {} | {} |",
            r.what, r.figure, r.target, r.method
        );
    }
    println!();
    println!(
        "bench total: {:.1} s; load average at the start: {load_before}, at the end: {}",
        started.elapsed().as_secs_f64(),
        loadavg()
    );
}

struct Row {
    what: String,
    figure: String,
    target: String,
    method: String,
}

fn row(what: &str, figure: String, target: &str, method: String) -> Row {
    Row {
        what: what.to_string(),
        figure,
        target: target.to_string(),
        method,
    }
}

/// A site tuned like a production one: loglevel 4, bodies over 64 KiB spooled to disk.
fn bench_site() -> Site {
    Site::new_in(Path::new(BENCH_PARENT))
        .file("loglevel", "4")
        .file("size_threshold", "65536")
}

// ---------------------------------------------------------------------------------------
// machine

fn machine() -> String {
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_string();
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown", |(_, v)| v.trim())
        .to_string();
    let mem = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .nth(1)
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or("?".into(), |kb| format!("{:.0} GiB", kb as f64 / MIB));
    format!(
        "machine: nproc {nproc}, kernel {kernel}, CPU {cpu}, RAM {mem}\n\
         filesystems: sites, spool and maildir under {BENCH_PARENT}: {}; /tmp: {}",
        filesystem(Path::new(BENCH_PARENT)),
        filesystem(Path::new("/tmp")),
    )
}

/// The 1-, 5- and 15-minute load averages: other work on the machine skews the figures.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The type, device and mount point of the filesystem holding `path`, from `df`.
fn filesystem(path: &Path) -> String {
    let Ok(out) = Command::new("df")
        .arg("--output=source,fstype,target")
        .arg(path)
        .output()
    else {
        return "unknown (df failed)".into();
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().nth(1).unwrap_or_default();
    match line.split_whitespace().collect::<Vec<_>>().as_slice() {
        [source, fstype, target] => format!("{fstype} ({source}, mounted at {target})"),
        _ => format!("unknown (df said {line:?})"),
    }
}

// ---------------------------------------------------------------------------------------
// (c) the 100 MB message and RSS, measured in a fresh helper process

/// Runs this binary again as the RSS helper and turns its `key=value` lines into rows.
fn big_message_rows(bin: &Path) -> Vec<Row> {
    let site = bench_site();
    let exe = std::env::current_exe().expect("current_exe");
    let out = Command::new(exe)
        .env("QPSMTPD_BENCH_RSS", site.config_dir())
        .env("QPSMTPD_BIN", bin)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .expect("run the RSS helper");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "RSS helper failed:\n{text}");
    let get = |key: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("RSS helper printed no {key}:\n{text}"))
    };
    let small_rss = get("small_rss_kib");
    let small_hwm = get("small_hwm_kib");
    let small_delivered = get("small_delivered");
    let big_bytes = get("big_bytes");
    let kib = |k: f64| format!("{:.1} MiB", k / 1024.0);
    let rate = |run: usize| big_bytes / MIB / get(&format!("big{run}_secs"));
    let delivered = |run: usize| {
        format!(
            "{} file of {:.1} MiB",
            get(&format!("big{run}_delivered")),
            get(&format!("big{run}_delivered_bytes")) / MIB
        )
    };
    let spool_left = site.spool_files().len();
    let tmp_left = count_entries(&site.maildir().join("tmp"));
    let repeats: Vec<String> = (2..=BIG_RUNS)
        .map(|run| {
            format!(
                "{:.0} MB/s ({:.2} s)",
                rate(run),
                get(&format!("big{run}_secs"))
            )
        })
        .collect();
    let all_delivered: Vec<String> = (1..=BIG_RUNS).map(delivered).collect();
    let peak_rss = get(&format!("big{BIG_RUNS}_rss_kib"));
    let hwms: Vec<String> = (1..=BIG_RUNS)
        .map(|run| kib(get(&format!("big{run}_hwm_kib"))))
        .collect();
    let helper = kib(get("helper_hwm_kib"));
    vec![
        row(
            "RSS of a session process",
            kib(small_rss),
            "< 8 MiB",
            format!(
                "`qpsmtpd` on stdin/stdout pipes (TCPREMOTEIP=127.0.0.1): EHLO, MAIL, RCPT, \
                 DATA with a 2 KB message, QUIT; max RSS from `getrusage(RUSAGE_CHILDREN)` \
                 after waiting for it, in a fresh helper process whose first child it is \
                 (VmHWM from `/proc/PID/status` before QUIT: {}; getrusage also counts the \
                 helper's own peak RSS at spawn time, which stayed at {helper}); \
                 {small_delivered} message delivered",
                kib(small_hwm)
            ),
        ),
        row(
            "one 100 MB message",
            format!("{:.0} MB/s", rate(1)),
            ">= 300 MB/s",
            format!(
                "same pipes, {:.0} MiB of 78-char lines + CRLF after DATA's 354, then `.`; \
                 time from the first body byte to the 250: {:.2} s, covering the spool file \
                 (`size_threshold` 65536), the copy into maildir/tmp, its fsync and the rename \
                 into new/; MB = 2^20 bytes; {} repeats, each after deleting the previous \
                 message: {}; delivered each time: {} (LF line ends); spool files left: \
                 {spool_left}, maildir/tmp files left: {tmp_left}",
                big_bytes / MIB,
                get("big1_secs"),
                BIG_RUNS - 1,
                repeats.join(", "),
                all_delivered.join(", "),
            ),
        ),
        row(
            "peak RSS during a 100 MB message",
            kib(peak_rss),
            "< 16 MiB",
            format!(
                "max RSS from `getrusage(RUSAGE_CHILDREN)` of the helper after waiting for \
                 all {BIG_RUNS} 100 MB sessions (VmHWM after each 250: {})",
                hwms.join(", ")
            ),
        ),
    ]
}

/// Runs of the 100 MB message: the first, then repeats with the previous message deleted.
const BIG_RUNS: usize = 3;

/// The helper: one small session, then the 100 MB ones, printing `key=value` lines.
fn rss_helper(config_dir: &Path) {
    let bin = qpsmtpd_bin(); // QPSMTPD_BIN is set: no build, no child
    let new = config_dir
        .parent()
        .expect("site")
        .join("maildir")
        .join("new");

    let small = pipe_session(bin, config_dir, 2048);
    let small_rss = getrusage(UsageWho::RUSAGE_CHILDREN)
        .expect("getrusage")
        .max_rss();
    println!("small_rss_kib={small_rss}");
    println!("small_hwm_kib={}", small.hwm_kib);
    println!("small_delivered={}", count_entries(&new));
    let small_files: Vec<PathBuf> = files(&new);

    for run in 1..=BIG_RUNS {
        let r = pipe_session(bin, config_dir, BIG_BYTES);
        println!("big_bytes={}", r.body_bytes);
        let rss = getrusage(UsageWho::RUSAGE_CHILDREN)
            .expect("getrusage")
            .max_rss();
        // The delivered file, to show the body really landed; then delete it so the next
        // run's page cache is recycled memory rather than memory the VM never touched.
        let delivered: Vec<PathBuf> = files(&new)
            .into_iter()
            .filter(|p| !small_files.contains(p))
            .collect();
        let bytes: u64 = delivered
            .iter()
            .filter_map(|p| p.metadata().ok())
            .map(|m| m.len())
            .sum();
        println!("big{run}_secs={}", r.data_secs);
        println!("big{run}_rss_kib={rss}");
        println!("big{run}_hwm_kib={}", r.hwm_kib);
        println!("big{run}_delivered={}", delivered.len());
        println!("big{run}_delivered_bytes={bytes}");
        for p in delivered {
            std::fs::remove_file(p).expect("remove the delivered message");
        }
    }
    println!("helper_hwm_kib={}", own_hwm_kib());
}

fn files(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default()
}

struct PipeResult {
    body_bytes: usize,
    data_secs: f64,
    hwm_kib: u64,
}

/// Reads one (possibly multi-line) SMTP reply; panics on EOF.
fn read_reply<R: BufRead>(r: &mut R) -> String {
    let mut all = String::new();
    loop {
        let mut line = String::new();
        let n = r.read_line(&mut line).expect("read reply");
        assert!(n > 0, "server closed the connection; so far: {all:?}");
        all.push_str(&line);
        if line.len() < 4 || line.as_bytes()[3] != b'-' {
            return all;
        }
    }
}

fn expect_code<R: BufRead>(r: &mut R, code: &str, what: &str) -> String {
    let reply = read_reply(r);
    assert!(
        reply.starts_with(code),
        "{what}: expected {code}, got {reply:?}"
    );
    reply
}

fn send(w: &mut ChildStdin, line: &str) {
    w.write_all(line.as_bytes()).expect("write command");
    w.flush().expect("flush");
}

/// Writes a message of about `len` bytes (rounded down to whole lines): a few header
/// lines, then 78-character lines + CRLF, none starting with a dot. The lines come from
/// one 64 KiB block written over and over, so that this process stays small: the RSS
/// that `getrusage(RUSAGE_CHILDREN)` reports for a child includes the parent's peak RSS
/// at the time of the spawn (the child's pre-exec memory is the parent's).
fn write_message(w: &mut impl Write, len: usize) -> std::io::Result<usize> {
    const HEADER: &[u8] = b"From: a@example.com\r\nTo: b@example.com\r\nSubject: bench\r\n\r\n";
    const TEXT: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ01234567";
    const LINES_PER_BLOCK: usize = 819; // 819 * 80 = 65,520 bytes
    let mut block = Vec::with_capacity(LINES_PER_BLOCK * 80);
    for i in 0..LINES_PER_BLOCK {
        // 8 digits + space + 69 characters = 78, then CRLF.
        block.extend_from_slice(format!("{i:08} {}\r\n", &TEXT[..69]).as_bytes());
    }
    w.write_all(HEADER)?;
    let mut lines = len.saturating_sub(HEADER.len()) / 80;
    let mut written = HEADER.len();
    while lines > 0 {
        let n = lines.min(LINES_PER_BLOCK);
        w.write_all(&block[..n * 80])?;
        written += n * 80;
        lines -= n;
    }
    Ok(written)
}

/// `VmHWM` of this process, in KiB.
fn own_hwm_kib() -> u64 {
    vm_hwm_kib(std::process::id())
}

/// `VmHWM` (peak resident set) of a live process, in KiB.
fn vm_hwm_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// One session over pipes; returns the DATA timing and the VmHWM just before QUIT. The
/// child has been waited for when this returns.
fn pipe_session(bin: &Path, config_dir: &Path, len: usize) -> PipeResult {
    let log = std::fs::File::create(config_dir.parent().expect("site").join("pipe.log"))
        .expect("log file");
    let mut child: Child = Command::new(bin)
        .arg("--config-dir")
        .arg(config_dir)
        .env("TCPREMOTEIP", "127.0.0.1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .expect("spawn qpsmtpd");
    let pid = child.id();
    let mut w: ChildStdin = child.stdin.take().expect("stdin");
    let mut r: BufReader<ChildStdout> = BufReader::new(child.stdout.take().expect("stdout"));

    expect_code(&mut r, "220", "banner");
    send(&mut w, "EHLO bench.example\r\n");
    expect_code(&mut r, "250", "EHLO");
    send(&mut w, "MAIL FROM:<a@example.com>\r\n");
    expect_code(&mut r, "250", "MAIL");
    send(&mut w, "RCPT TO:<b@example.com>\r\n");
    expect_code(&mut r, "250", "RCPT");
    send(&mut w, "DATA\r\n");
    expect_code(&mut r, "354", "DATA");

    let started = Instant::now();
    // Write from another thread so that a server that answers early cannot deadlock us.
    let writer = std::thread::spawn(move || {
        let n = write_message(&mut w, len).expect("write body");
        w.write_all(b".\r\n").expect("write end of data");
        w.flush().expect("flush");
        (w, n)
    });
    let reply = read_reply(&mut r);
    let data_secs = started.elapsed().as_secs_f64();
    let (mut w, body_bytes) = writer.join().expect("writer thread");
    assert!(reply.starts_with("250"), "end of data: {reply:?}");

    let hwm_kib = vm_hwm_kib(pid);
    send(&mut w, "QUIT\r\n");
    expect_code(&mut r, "221", "QUIT");
    drop(w);
    let mut rest = Vec::new();
    let _ = r.read_to_end(&mut rest);
    let status = child.wait().expect("wait qpsmtpd");
    assert!(status.success(), "qpsmtpd exited with {status}");
    PipeResult {
        body_bytes,
        data_secs,
        hwm_kib,
    }
}

// ---------------------------------------------------------------------------------------
// (a) tcpserver: sessions/s and exec-to-banner latency

fn tcpserver_rows() -> Vec<Row> {
    let site = bench_site();
    let (daemon, port) = tcpserver(&site, None, &["-c", "40"]);
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();

    // Warm the page cache and the binary before timing anything.
    for _ in 0..20 {
        let _ = ehlo_session(addr);
    }

    // Exec to banner, sequential connections.
    let mut lat: Vec<Duration> = Vec::with_capacity(BANNER_CONNECTIONS);
    let mut lat_errors = 0usize;
    for _ in 0..BANNER_CONNECTIONS {
        match banner_latency(addr) {
            Ok(d) => lat.push(d),
            Err(_) => lat_errors += 1,
        }
    }
    lat.sort();
    let pct = |p: f64| -> f64 {
        if lat.is_empty() {
            return f64::NAN;
        }
        let i = ((lat.len() as f64 - 1.0) * p).round() as usize;
        lat[i].as_secs_f64() * 1000.0
    };
    let (p50, p95, p99, min, max) = (pct(0.5), pct(0.95), pct(0.99), pct(0.0), pct(1.0));

    // Sessions/s from several client threads.
    let next = Arc::new(AtomicUsize::new(0));
    let errors = Arc::new(Mutex::new(Vec::<String>::new()));
    let started = Instant::now();
    let threads: Vec<_> = (0..EHLO_THREADS)
        .map(|_| {
            let next = Arc::clone(&next);
            let errors = Arc::clone(&errors);
            std::thread::spawn(move || {
                let mut ok = 0usize;
                while next.fetch_add(1, Ordering::Relaxed) < EHLO_SESSIONS {
                    match ehlo_session(addr) {
                        Ok(()) => ok += 1,
                        Err(e) => errors.lock().expect("lock").push(e),
                    }
                }
                ok
            })
        })
        .collect();
    let ok: usize = threads.into_iter().map(|t| t.join().expect("client")).sum();
    let secs = started.elapsed().as_secs_f64();
    let errors = errors.lock().expect("lock").clone();
    let first_error = errors.first().cloned().unwrap_or_default();
    drop(daemon);

    let mut error_note = String::new();
    if !errors.is_empty() {
        error_note = format!(
            "; **{} failed** (first: {})",
            errors.len(),
            first_error.replace('|', "/")
        );
    }
    vec![
        row(
            "connect + EHLO + QUIT, exec per connection",
            format!("{:.0} sessions/s", ok as f64 / secs),
            "",
            format!(
                "`tcpserver -R -H -c 40` running `qpsmtpd` per connection; {EHLO_SESSIONS} \
                 sessions from {EHLO_THREADS} client threads, each: connect, read the banner, \
                 EHLO, QUIT, read the 221; {ok} completed in {secs:.2} s{error_note}"
            ),
        ),
        row(
            "exec to banner (tcpserver)",
            format!("median {p50:.2} ms, p95 {p95:.2} ms"),
            "< 2 ms",
            format!(
                "time from `connect()` to the complete `220 ...\\r\\n` line, \
                 {BANNER_CONNECTIONS} sequential connections (each then QUIT) after 20 \
                 warm-up sessions; min {min:.2} ms, p99 {p99:.2} ms, max {max:.2} ms; \
                 {lat_errors} failed"
            ),
        ),
    ]
}

fn connect(addr: SocketAddr) -> Result<(BufReader<TcpStream>, TcpStream), String> {
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let _ = s.set_nodelay(true);
    let r = BufReader::new(s.try_clone().map_err(|e| e.to_string())?);
    Ok((r, s))
}

/// Reads a reply, requiring the given code.
fn reply_is(r: &mut BufReader<TcpStream>, code: &str) -> Result<(), String> {
    let mut all = String::new();
    loop {
        let mut line = String::new();
        match r.read_line(&mut line) {
            Ok(0) => return Err(format!("closed; got {all:?}")),
            Ok(_) => {}
            Err(e) => return Err(format!("read: {e}; got {all:?}")),
        }
        all.push_str(&line);
        if line.len() < 4 || line.as_bytes()[3] != b'-' {
            break;
        }
    }
    if all.starts_with(code) {
        Ok(())
    } else {
        Err(format!("expected {code}, got {:?}", all.trim_end()))
    }
}

fn ehlo_session(addr: SocketAddr) -> Result<(), String> {
    let (mut r, mut w) = connect(addr)?;
    reply_is(&mut r, "220")?;
    w.write_all(b"EHLO bench.example\r\n")
        .map_err(|e| e.to_string())?;
    reply_is(&mut r, "250")?;
    w.write_all(b"QUIT\r\n").map_err(|e| e.to_string())?;
    reply_is(&mut r, "221")
}

fn banner_latency(addr: SocketAddr) -> Result<Duration, String> {
    let started = Instant::now();
    let (mut r, mut w) = connect(addr)?;
    let mut line = String::new();
    r.read_line(&mut line).map_err(|e| e.to_string())?;
    let elapsed = started.elapsed();
    if !line.starts_with("220 ") || !line.ends_with("\r\n") {
        return Err(format!("banner {line:?}"));
    }
    w.write_all(b"QUIT\r\n").map_err(|e| e.to_string())?;
    reply_is(&mut r, "221")?;
    Ok(elapsed)
}

// ---------------------------------------------------------------------------------------
// (b) smtp-source into the maildir

/// Which server an smtp-source run talks to.
enum Server {
    Tcpserver,
    /// The forkserver with this `--max-connections`.
    Forkserver(&'static str),
}

fn smtp_source_rows() -> Vec<Row> {
    let mut rows = Vec::new();
    for (what, server, per_connection) in [
        (
            "2 KB messages, tcpserver, new connection per message",
            Server::Tcpserver,
            false,
        ),
        (
            "2 KB messages, tcpserver, `-d` (many per connection)",
            Server::Tcpserver,
            true,
        ),
        (
            "2 KB messages, forkserver, new connection per message",
            Server::Forkserver("40"),
            false,
        ),
        (
            "2 KB messages, forkserver, `-d` (many per connection)",
            Server::Forkserver("40"),
            true,
        ),
    ] {
        let d = if per_connection { " -d" } else { "" };
        let client = format!(
            "`smtp-source{d} -s {SOURCE_SESSIONS} -m {SOURCE_MESSAGES} -l {SOURCE_LENGTH} -f \
             a@example.com -t b@example.com 127.0.0.1:PORT`"
        );
        let (row, _) = source_row(what, bench_site(), server, &client, "", &[], |port| {
            smtp_source(port, per_connection)
        });
        rows.push(row);
    }
    rows
}

/// The DNS plugins of the whole chain, in the order `config.sample/plugins` lists them.
/// `helo` only scores (the fixture has no entry for every check it makes).
const DNS_CHAIN: &str = "fcrdns\ndnsbl\nhelo reject 0\nrhsbl\nsender_permitted_from reject 3\n\
                         dkim reject 0\ndmarc";

/// What the DNS chain must have written into the Authentication-Results header.
const CHAIN_RESULTS: [&str; 3] = [
    "spf=pass smtp.mailfrom=example.test",
    "dkim=pass header.d=example.test",
    "dmarc=pass",
];

/// Messages/s with the DNS and authentication plugins against a real DNS server (knot
/// with the fixture zones), beside the same run without them. The client sends a
/// DKIM-signed message (`tests/fixtures/dkim-signed.eml`, from `a@example.test`), so the
/// chain verifies a signature, evaluates SPF and DMARC, and all pass.
fn dns_chain_rows() -> Vec<Row> {
    let dns = DnsServer::start();
    let mut rows = Vec::new();
    let mut rates = Vec::new();
    for (what, per_connection) in [
        ("new connection per message", false),
        ("many messages per connection", true),
    ] {
        let how_many = if per_connection {
            "each thread one connection for all its messages"
        } else {
            "a new connection for each message"
        };
        let client = format!(
            "{SOURCE_SESSIONS} client threads sending `tests/fixtures/dkim-signed.eml` \
             ({} bytes, DKIM-signed with d=example.test) {SOURCE_MESSAGES} times, EHLO \
             mx.example.test, MAIL FROM:<a@example.test>, {how_many}",
            signed_message().len()
        );
        let plain = bench_site();
        let maildir = plain.maildir().display().to_string();
        let plain = plain.file("plugins", &format!("rcpt_ok\nqueue/maildir {maildir}"));
        let (row, without) = source_row(
            &format!("signed 2.8 KB messages, tcpserver, {what}, no DNS plugins (baseline)"),
            plain,
            Server::Tcpserver,
            &client,
            "",
            &[],
            |port| signed_source(port, per_connection),
        );
        rows.push(row);

        let chain = bench_site();
        let maildir = chain.maildir().display().to_string();
        let chain = chain
            .file("dns_servers", &dns.addr().to_string())
            .file("dns_timeout", "2")
            .file("dnsbl_zones", "bl.test\nbl2.test\nbl3.test")
            .file("rhsbl_zones", "rhsbl.test")
            .file(
                "plugins",
                &format!("{DNS_CHAIN}\nrcpt_ok\nqueue/maildir {maildir}"),
            );
        let (row, with) = source_row(
            &format!("signed 2.8 KB messages, tcpserver, {what}, DNS chain"),
            chain,
            Server::Tcpserver,
            &client,
            &format!(
                "; plugins `{}` before `rcpt_ok`, three DNSBL zones, one RHSBL zone, \
                 resolving against knot on 127.0.0.1 (fixture zones); the first message's \
                 Authentication-Results had spf, dkim and dmarc `pass`",
                DNS_CHAIN.replace('\n', ", ")
            ),
            &CHAIN_RESULTS,
            |port| signed_source(port, per_connection),
        );
        rows.push(row);
        rates.push((what, without, with));
    }
    for (what, without, with) in rates {
        let figure = match (without, with) {
            (Some(a), Some(b)) => format!("{:.0} %", 100.0 * b / a),
            _ => "**failed**".to_string(),
        };
        rows.push(row(
            &format!("DNS chain throughput vs. baseline, {what}"),
            figure,
            "≥ 50 %",
            "the DNS chain row's msg/s over its baseline row's".to_string(),
        ));
    }
    rows
}

/// One run of `send` against `site` behind `server`; the row, and the rate if every
/// message landed in the maildir and the first one contains each of `expect`. `client`
/// says what `send` does.
fn source_row(
    what: &str,
    site: Site,
    server: Server,
    client: &str,
    note: &str,
    expect: &[&str],
    send: impl FnOnce(u16) -> SourceRun,
) -> (Row, Option<f64>) {
    let (daemon, port, how) = match server {
        Server::Tcpserver => {
            let (d, p) = tcpserver(&site, None, &["-c", "40"]);
            (
                d,
                p,
                "`tcpserver -R -H -c 40` exec'ing `qpsmtpd` per connection".to_string(),
            )
        }
        Server::Forkserver(max) => {
            let (d, p) = forkserver(&site, &["--max-connections", max]);
            (
                d,
                p,
                format!("`qpsmtpd --listen 127.0.0.1:PORT --max-connections {max}`"),
            )
        }
    };
    let run = send(port);
    // Every session has ended once the client is done, but give stragglers a moment.
    std::thread::sleep(Duration::from_millis(200));
    let delivered = count_entries(&site.maildir().join("new"));
    // The first message must show that the checks ran and passed.
    let first = site.messages().into_iter().next().unwrap_or_default();
    let missing: Vec<&str> = expect
        .iter()
        .copied()
        .filter(|e| !first.contains(e))
        .collect();
    let spool_left = site.spool_files().len();
    let refusals = daemon.log_text().matches("too many connections").count();
    drop(daemon);
    let honest = delivered == SOURCE_MESSAGES && run.ok && missing.is_empty();
    let rate = SOURCE_MESSAGES as f64 / run.secs;
    let figure = if honest {
        format!("{rate:.0} msg/s")
    } else {
        format!("**failed** after {delivered} messages")
    };
    let problem = if honest {
        String::new()
    } else {
        format!(
            "; the client said: {}; missing from the first message: {missing:?}",
            run.stderr.replace('|', "/").replace('\n', " / ")
        )
    };
    let refused = if refusals > 0 {
        format!("; the server logged {refusals} \"too many connections\"")
    } else {
        String::new()
    };
    let row = row(
        what,
        figure,
        "",
        format!(
            "{how}; {client} took {:.2} s; maildir/new then held {delivered} of \
             {SOURCE_MESSAGES} messages (each fsynced), spool files left: \
             {spool_left}{refused}{problem}{note}",
            run.secs
        ),
    );
    (row, honest.then_some(rate))
}

/// The DKIM-signed fixture message, CRLF line ends, no line starting with a dot.
fn signed_message() -> Vec<u8> {
    std::fs::read(fixture("dkim-signed.eml")).expect("tests/fixtures/dkim-signed.eml")
}

/// Sends [`signed_message`] [`SOURCE_MESSAGES`] times from [`SOURCE_SESSIONS`] threads,
/// like smtp-source: a new connection per message, or with `per_connection` one
/// connection per thread for all its messages. Gives up after two minutes.
fn signed_source(port: u16, per_connection: bool) -> SourceRun {
    let message = Arc::new(signed_message());
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let next = Arc::new(AtomicUsize::new(0));
    let errors = Arc::new(Mutex::new(Vec::<String>::new()));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(120);
    let threads: Vec<_> = (0..SOURCE_SESSIONS)
        .map(|_| {
            let (message, next, errors) =
                (Arc::clone(&message), Arc::clone(&next), Arc::clone(&errors));
            std::thread::spawn(move || {
                let mut open = None;
                while next.fetch_add(1, Ordering::Relaxed) < SOURCE_MESSAGES
                    && Instant::now() < deadline
                {
                    let sent =
                        open.take()
                            .map_or_else(|| greet(addr), Ok)
                            .and_then(|(mut r, mut w)| {
                                send_one(&mut r, &mut w, &message)?;
                                Ok((r, w))
                            });
                    match sent {
                        Ok((mut r, mut w)) if !per_connection => {
                            let _ = w.write_all(b"QUIT\r\n");
                            let _ = reply_is(&mut r, "221");
                        }
                        Ok(c) => open = Some(c),
                        Err(e) => errors.lock().expect("lock").push(e),
                    }
                }
                if let Some((mut r, mut w)) = open {
                    let _ = w.write_all(b"QUIT\r\n");
                    let _ = reply_is(&mut r, "221");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("client thread");
    }
    let secs = started.elapsed().as_secs_f64();
    let errors = errors.lock().expect("lock").clone();
    let mut stderr: Vec<String> = errors.iter().take(3).cloned().collect();
    if Instant::now() >= deadline {
        stderr.push("gave up after 120 s".to_string());
    }
    SourceRun {
        secs,
        ok: stderr.is_empty(),
        stderr: stderr.join("\n"),
    }
}

/// Connects, reads the banner and greets as the fixture's sending host.
fn greet(addr: SocketAddr) -> Result<(BufReader<TcpStream>, TcpStream), String> {
    let (mut r, mut w) = connect(addr)?;
    reply_is(&mut r, "220")?;
    w.write_all(b"EHLO mx.example.test\r\n")
        .map_err(|e| e.to_string())?;
    reply_is(&mut r, "250")?;
    Ok((r, w))
}

/// One transaction carrying `message`; its 250 after the final dot.
fn send_one(r: &mut BufReader<TcpStream>, w: &mut TcpStream, message: &[u8]) -> Result<(), String> {
    let io = |e: std::io::Error| e.to_string();
    w.write_all(b"MAIL FROM:<a@example.test>\r\n").map_err(io)?;
    reply_is(r, "250")?;
    w.write_all(b"RCPT TO:<b@example.com>\r\n").map_err(io)?;
    reply_is(r, "250")?;
    w.write_all(b"DATA\r\n").map_err(io)?;
    reply_is(r, "354")?;
    w.write_all(message).map_err(io)?;
    w.write_all(b".\r\n").map_err(io)?;
    reply_is(r, "250")
}

struct SourceRun {
    secs: f64,
    ok: bool,
    stderr: String,
}

/// Runs smtp-source against 127.0.0.1:`port`, killing it after two minutes.
fn smtp_source(port: u16, per_connection: bool) -> SourceRun {
    let bin: PathBuf = require("smtp-source");
    let mut cmd = Command::new(bin);
    if per_connection {
        cmd.arg("-d");
    }
    cmd.args([
        "-s",
        &SOURCE_SESSIONS.to_string(),
        "-m",
        &SOURCE_MESSAGES.to_string(),
        "-l",
        &SOURCE_LENGTH.to_string(),
        "-f",
        "a@example.com",
        "-t",
        "b@example.com",
        &format!("127.0.0.1:{port}"),
    ])
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = cmd.spawn().expect("spawn smtp-source");
    let mut stderr = child.stderr.take().expect("stderr");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let deadline = started + Duration::from_secs(120);
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait smtp-source") {
            break Some(st);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let secs = started.elapsed().as_secs_f64();
    let stderr = reader.join().unwrap_or_default();
    let stderr: String = stderr.lines().take(3).collect::<Vec<_>>().join("\n");
    SourceRun {
        secs,
        ok: status.is_some_and(|s| s.success()) && stderr.is_empty(),
        stderr: if status.is_none() {
            format!("killed after 120 s; {stderr}")
        } else {
            stderr
        },
    }
}
