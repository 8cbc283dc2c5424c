//! The forkserver (`qpsmtpd --listen ADDR:PORT`) end to end: real clients on loopback,
//! real signals, real privilege dropping, and what a user or an administrator sees of it
//! (replies, the maildir, the log, the PID file, the process table).

use qpsmtpd_tests::{
    Client, Daemon, Site, free_port, python, qpsmtpd_bin, run_with_input, wait_for_port,
};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const ME: &str = "test.example";

/// A free TCP port on ::1.
fn free_port_v6() -> u16 {
    TcpListener::bind("[::1]:0")
        .and_then(|l| l.local_addr())
        .expect("bind [::1]:0 (is IPv6 loopback configured?)")
        .port()
}

fn localhost(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

fn v4(port: u16) -> SocketAddr {
    (Ipv4Addr::LOCALHOST, port).into()
}

/// Starts `qpsmtpd --config-dir <site>/config <args>` as a daemon logging to `<site>/<name>.log`.
fn start(site: &Site, name: &str, args: &[String]) -> Daemon {
    let mut cmd = site.command();
    cmd.args(args);
    Daemon::start(name, cmd, &site.path().join(format!("{name}.log")))
}

/// `qpsmtpd --listen 127.0.0.1:<free port> <extra>`, ready once it logs that it listens.
/// (Unlike probing the port, this opens no connection that would count against the limits.)
fn listen(site: &Site, extra: &[&str]) -> (Daemon, u16) {
    let port = free_port();
    let mut args = vec!["--listen".to_string(), format!("127.0.0.1:{port}")];
    args.extend(extra.iter().map(|a| a.to_string()));
    let d = start(site, "forkserver", &args);
    d.wait_for_log(
        &format!("Listening on 127.0.0.1:{port}"),
        Duration::from_secs(10),
    );
    (d, port)
}

/// Runs a server command that is expected to give up at once; (success, stderr).
fn run_expecting_exit(cmd: Command) -> (bool, String) {
    let out = run_with_input(cmd, b"", Duration::from_secs(20));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Asserts a full SMTP reply: one line with exactly this text.
fn assert_reply(got: &str, want: &str) {
    assert_eq!(got, format!("{want}\r\n"), "unexpected reply");
}

fn assert_code(got: &str, code: &str, what: &str) {
    assert!(
        got.starts_with(code),
        "{what}: expected {code}, got {got:?}"
    );
}

/// EHLO, MAIL, RCPT, DATA with a small message; returns the reply to the final dot.
fn deliver(c: &mut Client, rcpt: &str, subject: &str) -> String {
    assert_code(&c.cmd("EHLO client.test"), "250", "EHLO");
    assert_code(&c.cmd("MAIL FROM:<alice@example.net>"), "250", "MAIL");
    assert_code(&c.cmd(&format!("RCPT TO:<{rcpt}>")), "250", "RCPT");
    assert_code(&c.cmd("DATA"), "354", "DATA");
    c.send(
        format!(
            "From: alice@example.net\r\nTo: {rcpt}\r\nSubject: {subject}\r\n\r\nhello\r\n.\r\n"
        )
        .as_bytes(),
    );
    c.reply()
}

/// A session up to RCPT; returns the RCPT reply.
fn rcpt_reply(port: u16, rcpt: &str) -> String {
    let (mut c, banner) = Client::connect(port);
    assert_code(&banner, "220", "banner");
    assert_code(&c.cmd("EHLO client.test"), "250", "EHLO");
    assert_code(&c.cmd("MAIL FROM:<alice@example.net>"), "250", "MAIL");
    let reply = c.cmd(&format!("RCPT TO:<{rcpt}>"));
    c.cmd("QUIT");
    reply
}

/// The first `Received` header of a message, unfolded.
fn received(message: &str) -> String {
    let mut lines = message.split('\n').map(|l| l.trim_end_matches('\r'));
    let Some(first) = lines.find(|l| l.starts_with("Received:")) else {
        panic!("no Received header in:\n{message}");
    };
    let mut value = first.to_string();
    for l in lines.take_while(|l| l.starts_with([' ', '\t'])) {
        value.push(' ');
        value.push_str(l.trim());
    }
    value
}

/// The one message with `subject` in the maildir.
fn message_with(site: &Site, subject: &str) -> String {
    let found: Vec<String> = site
        .messages()
        .into_iter()
        .filter(|m| m.contains(&format!("Subject: {subject}")))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "messages with Subject {subject:?}: {found:?}"
    );
    found.into_iter().next().expect("one message")
}

/// Connects until the server greets with 220 again (it may take a moment to reap a child).
fn wait_for_220(port: u16, from: IpAddr, timeout: Duration) -> Client {
    let deadline = Instant::now() + timeout;
    loop {
        let (c, banner) = Client::connect_from(from, v4(port));
        if banner.starts_with("220") {
            return c;
        }
        assert!(
            Instant::now() < deadline,
            "still no 220 banner after {timeout:?}; last reply {banner:?}"
        );
        drop(c);
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The PID in a PID file once it exists.
fn wait_for_pid_file(path: &Path, timeout: Duration) -> u32 {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(text) = std::fs::read_to_string(path)
            && let Ok(pid) = text.trim().parse::<u32>()
        {
            return pid;
        }
        assert!(
            Instant::now() < deadline,
            "{} not written within {timeout:?}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    done()
}

/// Kills a process we did not start ourselves (a detached server) and its group on drop.
struct PidGuard(i32);

impl Drop for PidGuard {
    fn drop(&mut self) {
        use nix::sys::signal::{Signal, kill, killpg};
        use nix::unistd::Pid;
        let _ = killpg(Pid::from_raw(self.0), Signal::SIGKILL);
        let _ = kill(Pid::from_raw(self.0), Signal::SIGKILL);
    }
}

/// True while `pid` is a process that has not ended (not a zombie).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/status")) {
        Ok(status) => !status
            .lines()
            .any(|l| l.starts_with("State:") && (l.contains('Z') || l.contains('X'))),
        Err(_) => false,
    }
}

/// The numbers on a line of /proc/<pid>/status (`Uid:`, `Gid:`, `Groups:`).
fn proc_status_ids(pid: u32, field: &str) -> Vec<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"));
    line[field.len()..]
        .split_whitespace()
        .map(|n| n.parse().expect("id"))
        .collect()
}

#[test]
fn python_smtplib_delivers_over_listen_with_received_naming_the_client() {
    let site = Site::new();
    let (server, port) = listen(&site, &[]);
    let script = r#"
import smtplib, sys
from email.message import EmailMessage
m = EmailMessage()
m['From'] = 'alice@example.net'
m['To'] = 'bob@example.com'
m['Subject'] = 'forkserver smtplib'
m.set_content('delivered over --listen\n')
with smtplib.SMTP('127.0.0.1', int(sys.argv[1]), local_hostname='client.test', timeout=10) as s:
    refused = s.send_message(m)
print('refused:', refused)
"#;
    let (ok, out) = python(script, &[&port.to_string()]);
    assert!(
        ok,
        "smtplib failed:\n{out}\nserver log:\n{}",
        server.log_text()
    );
    assert!(out.contains("refused: {}"), "{out}");
    let message = message_with(&site, "forkserver smtplib");
    assert!(message.contains("delivered over --listen"), "{message}");
    let rcvd = received(&message);
    assert!(rcvd.contains("(HELO client.test)"), "{rcvd}");
    assert!(rcvd.contains("(127.0.0.1)"), "{rcvd}");
    assert!(rcvd.contains(&format!("by {ME}")), "{rcvd}");
    assert!(site.spool_files().is_empty(), "{:?}", site.spool_files());
}

#[test]
fn ipv6_and_ipv4_listeners_serve_at_the_same_time() {
    let site = Site::new();
    let (p6, p4) = (free_port_v6(), free_port());
    let server = start(
        &site,
        "forkserver",
        &[
            "--listen".into(),
            format!("[::1]:{p6}"),
            "--listen".into(),
            format!("127.0.0.1:{p4}"),
        ],
    );
    let a6: SocketAddr = format!("[::1]:{p6}").parse().expect("v6 addr");
    wait_for_port(a6, Duration::from_secs(10));
    wait_for_port(v4(p4), Duration::from_secs(10));
    let log = server.wait_for_log(&format!("Listening on [::1]:{p6}"), Duration::from_secs(5));
    assert!(
        log.contains(&format!("Listening on 127.0.0.1:{p4}")),
        "{log}"
    );

    let (mut c6, banner) = Client::connect_to(a6);
    assert_code(&banner, &format!("220 {ME}"), "IPv6 banner");
    let (mut c4, banner) = Client::connect_to(v4(p4));
    assert_code(&banner, &format!("220 {ME}"), "IPv4 banner");
    assert_code(
        &deliver(&mut c6, "bob@example.com", "over v6"),
        "250",
        "v6 DATA",
    );
    assert_code(
        &deliver(&mut c4, "bob@example.com", "over v4"),
        "250",
        "v4 DATA",
    );
    assert_code(&c6.cmd("QUIT"), "221", "QUIT");
    assert_code(&c4.cmd("QUIT"), "221", "QUIT");

    let r6 = received(&message_with(&site, "over v6"));
    assert!(r6.contains("(::1)"), "{r6}");
    let r4 = received(&message_with(&site, "over v4"));
    assert!(r4.contains("(127.0.0.1)"), "{r4}");
}

#[test]
fn max_connections_refuses_the_extra_connection_with_421_until_one_ends() {
    let site = Site::new();
    let (server, port) = listen(&site, &["--max-connections", "2"]);
    let (mut first, banner) = Client::connect(port);
    assert_code(&banner, "220", "first banner");
    let (mut second, banner) = Client::connect(port);
    assert_code(&banner, "220", "second banner");

    let (mut third, banner) = Client::connect(port);
    assert_reply(
        &banner,
        &format!("421 4.3.2 {ME} Too many connections, try again later"),
    );
    assert!(third.is_closed(), "the refused connection stays open");
    server.wait_for_log("too many connections", Duration::from_secs(5));

    // The two held sessions still work.
    assert_code(&first.cmd("NOOP"), "250", "NOOP on a held session");
    assert_code(&second.cmd("QUIT"), "221", "QUIT");
    assert!(second.is_closed());
    drop(second);

    let mut again = wait_for_220(port, localhost(1), Duration::from_secs(5));
    assert_code(
        &again.cmd("EHLO client.test"),
        "250",
        "EHLO after a slot freed",
    );
    assert_code(&first.cmd("QUIT"), "221", "QUIT");
}

#[test]
fn max_from_ip_refuses_the_third_connection_from_one_address_only() {
    let site = Site::new();
    let maildir = site.maildir();
    let site = site.file(
        "plugins",
        &format!("hosts_allow\nrcpt_ok\nqueue/maildir {}", maildir.display()),
    );
    let (server, port) = listen(&site, &["--max-from-ip", "2"]);
    let (mut a, banner) = Client::connect(port);
    assert_code(&banner, "220", "first banner");
    let (mut b, banner) = Client::connect(port);
    assert_code(&banner, "220", "second banner");

    let (mut refused, banner) = Client::connect(port);
    assert_reply(
        &banner,
        "451 4.7.1 Sorry, too many connections from 127.0.0.1, try again later",
    );
    assert!(refused.is_closed(), "the refused connection stays open");

    // Another address is not affected by 127.0.0.1's connections.
    let (mut other, banner) = Client::connect_from(localhost(2), v4(port));
    assert_code(&banner, &format!("220 {ME}"), "banner for 127.0.0.2");
    assert_code(&other.cmd("EHLO client.test"), "250", "EHLO from 127.0.0.2");
    assert_code(&other.cmd("QUIT"), "221", "QUIT");

    assert_code(&a.cmd("NOOP"), "250", "NOOP on a held session");
    assert_code(&b.cmd("QUIT"), "221", "QUIT");
    server.wait_for_log("pre-connection refused 127.0.0.1", Duration::from_secs(5));
}

#[test]
fn hosts_allow_rule_refuses_a_client_before_the_banner() {
    let site = Site::new();
    let maildir = site.maildir();
    let site = site
        .file(
            "plugins",
            &format!("hosts_allow\nrcpt_ok\nqueue/maildir {}", maildir.display()),
        )
        .file("hosts_allow", "127.0.0.3 DENY go away");
    let (server, port) = listen(&site, &[]);

    let (mut denied, banner) = Client::connect_from(localhost(3), v4(port));
    assert_reply(&banner, "550 5.7.1 go away");
    assert!(denied.is_closed(), "the refused connection stays open");
    server.wait_for_log("pre-connection refused 127.0.0.3", Duration::from_secs(5));

    let (mut ok, banner) = Client::connect(port);
    assert_code(&banner, &format!("220 {ME}"), "banner for 127.0.0.1");
    assert_code(&ok.cmd("QUIT"), "221", "QUIT");
}

#[test]
fn sighup_reloads_config_and_keeps_the_old_one_when_the_new_one_is_broken() {
    let site = Site::new();
    let maildir = site.maildir();
    let (server, port) = listen(&site, &[]);
    server.wait_for_log("Listening on", Duration::from_secs(5));

    assert_code(
        &rcpt_reply(port, "user@example.com"),
        "250",
        "RCPT example.com",
    );
    assert_code(
        &rcpt_reply(port, "user@example.org"),
        "550",
        "RCPT example.org before",
    );

    let site = site.file("rcpthosts", "example.com\nexample.org");
    server.signal("HUP");
    server.wait_for_log(
        "SIGHUP: configuration and plugins reloaded",
        Duration::from_secs(10),
    );
    assert_code(
        &rcpt_reply(port, "user@example.org"),
        "250",
        "RCPT example.org after HUP",
    );

    let site = site.file(
        "plugins",
        &format!(
            "rcpt_ok\nno_such_plugin\nqueue/maildir {}",
            maildir.display()
        ),
    );
    server.signal("HUP");
    let log = server.wait_for_log("SIGHUP: configuration error", Duration::from_secs(10));
    let line = log
        .lines()
        .find(|l| l.contains("SIGHUP: configuration error"))
        .expect("error line");
    assert!(line.contains("plugins:2"), "{line}");
    assert!(line.contains("no_such_plugin"), "{line}");

    // Still serving, with the configuration from before the broken reload.
    let (mut c, banner) = Client::connect(port);
    assert!(
        banner.starts_with(&format!("220 {ME}")),
        "banner after a broken reload: {banner:?}\nserver log:\n{}",
        server.log_text()
    );
    assert_code(
        &deliver(&mut c, "user@example.org", "after broken reload"),
        "250",
        "delivery after a broken reload",
    );
    assert_code(&c.cmd("QUIT"), "221", "QUIT");
    message_with(&site, "after broken reload");
}

#[test]
fn sigterm_says_421_to_idle_sessions_and_exits_0_removing_the_pid_file() {
    let site = Site::new();
    let pid_file = site.path().join("qpsmtpd.pid");
    let (mut server, port) = listen(&site, &["--pid-file", &pid_file.to_string_lossy()]);
    assert_eq!(
        wait_for_pid_file(&pid_file, Duration::from_secs(10)),
        server.pid()
    );

    let (mut idle, banner) = Client::connect(port);
    assert_code(&banner, "220", "banner");
    assert_code(&idle.cmd("EHLO client.test"), "250", "EHLO");
    server.wait_for_log("served by", Duration::from_secs(5));

    server.signal("TERM");
    assert_reply(
        &idle.reply(),
        &format!("421 4.3.2 {ME} Service shutting down, closing connection"),
    );
    assert!(idle.is_closed(), "the session stays open after the 421");

    let status = server
        .wait_exit(Duration::from_secs(10))
        .unwrap_or_else(|| panic!("still running 10 s after SIGTERM:\n{}", server.log_text()));
    assert!(
        status.success(),
        "exit status {status:?}\n{}",
        server.log_text()
    );
    assert!(!pid_file.exists(), "PID file left behind");
    assert!(
        TcpStream::connect_timeout(&v4(port), Duration::from_secs(2)).is_err(),
        "still accepting connections after exit"
    );
}

#[test]
fn pid_file_of_a_running_server_stops_a_second_one() {
    let site = Site::new();
    let pid_file = site.path().join("qpsmtpd.pid");
    let pid_arg = pid_file.to_string_lossy().into_owned();
    let (first, port) = listen(&site, &["--pid-file", &pid_arg]);
    assert_eq!(
        wait_for_pid_file(&pid_file, Duration::from_secs(10)),
        first.pid()
    );

    let mut second = site.command();
    second
        .arg("--listen")
        .arg(format!("127.0.0.1:{}", free_port()))
        .arg("--pid-file")
        .arg(&pid_file);
    let (ok, stderr) = run_expecting_exit(second);
    assert!(
        !ok,
        "a second server started with a live PID file:\n{stderr}"
    );
    assert!(
        stderr.contains(&pid_arg),
        "message does not name the PID file:\n{stderr}"
    );

    // The first server is undisturbed.
    assert_eq!(
        std::fs::read_to_string(&pid_file).expect("pid file").trim(),
        first.pid().to_string()
    );
    let (mut c, banner) = Client::connect(port);
    assert_code(&banner, "220", "first server's banner");
    assert_code(&c.cmd("QUIT"), "221", "QUIT");
}

#[test]
fn detach_returns_at_once_and_leaves_a_serving_daemon_named_by_the_pid_file() {
    let site = Site::new();
    let pid_file = site.path().join("detached.pid");
    let port = free_port();
    let log = std::fs::File::create(site.path().join("detach.log")).expect("log");
    // Resolved (and built if need be) before the clock starts.
    let bin = qpsmtpd_bin();
    let started = Instant::now();
    let mut foreground = Command::new(bin)
        .arg("--config-dir")
        .arg(site.config_dir())
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--detach")
        .arg("--pid-file")
        .arg(&pid_file)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("dup"))
        .stderr(log)
        .spawn()
        .expect("start qpsmtpd --detach");
    let guard_for = |path: &PathBuf| {
        std::fs::read_to_string(path)
            .ok()
            .and_then(|t| t.trim().parse::<i32>().ok())
            .map(PidGuard)
    };
    let mut status = None;
    wait_until(Duration::from_secs(30), || {
        status = foreground.try_wait().expect("try_wait");
        status.is_some()
    });
    let elapsed = started.elapsed();
    let _guard = guard_for(&pid_file);
    let log_text = || std::fs::read_to_string(site.path().join("detach.log")).unwrap_or_default();
    let Some(status) = status else {
        let _ = foreground.kill();
        let _ = foreground.wait();
        panic!(
            "qpsmtpd --detach did not return within 30 s:\n{}",
            log_text()
        );
    };
    assert!(status.success(), "{status:?}\n{}", log_text());
    assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");

    let pid = wait_for_pid_file(&pid_file, Duration::from_secs(1));
    assert_ne!(
        pid,
        foreground.id(),
        "the PID file names the foreground process"
    );
    assert!(alive(pid), "PID {pid} from the PID file is not running");
    let (mut c, banner) = Client::connect(port);
    assert_code(&banner, &format!("220 {ME}"), "detached server's banner");
    assert_code(&c.cmd("EHLO client.test"), "250", "EHLO");
    assert_code(&c.cmd("QUIT"), "221", "QUIT");

    // The administrator stops it by the PID file.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("SIGTERM the detached server");
    assert!(
        wait_until(Duration::from_secs(10), || !pid_file.exists()),
        "PID file still there 10 s after SIGTERM:\n{}",
        log_text()
    );
}

#[test]
fn user_and_group_drop_privileges_for_server_and_deliveries() {
    let site = Site::new();
    if !nix::unistd::Uid::effective().is_root() {
        let mut cmd = site.command();
        cmd.arg("--listen")
            .arg(format!("127.0.0.1:{}", free_port()))
            .args(["--user", "nobody", "--group", "nogroup"]);
        let (ok, stderr) = run_expecting_exit(cmd);
        assert!(!ok, "started with --user while not root:\n{stderr}");
        assert!(
            stderr.contains("--user and --group need the server to be started as root"),
            "{stderr}"
        );
        return;
    }
    let nobody = nix::unistd::User::from_name("nobody")
        .expect("getpwnam")
        .expect("user nobody");
    let nogroup = nix::unistd::Group::from_name("nogroup")
        .expect("getgrnam")
        .expect("group nogroup");
    for dir in [site.maildir(), site.spool_dir()] {
        std::fs::create_dir_all(&dir).expect("mkdir");
        nix::unistd::chown(&dir, Some(nobody.uid), Some(nogroup.gid)).expect("chown");
    }
    let (server, port) = listen(&site, &["--user", "nobody", "--group", "nogroup"]);
    server.wait_for_log(
        &format!("Running as uid {} gid {}", nobody.uid, nogroup.gid),
        Duration::from_secs(5),
    );

    let (mut c, banner) = Client::connect(port);
    assert_code(&banner, "220", "banner");
    assert_code(
        &deliver(&mut c, "bob@example.com", "as nobody"),
        "250",
        "DATA as nobody",
    );
    assert_code(&c.cmd("QUIT"), "221", "QUIT");

    message_with(&site, "as nobody");
    let files: Vec<PathBuf> = std::fs::read_dir(site.maildir().join("new"))
        .expect("maildir/new")
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    use std::os::unix::fs::MetadataExt;
    let owner = std::fs::metadata(&files[0]).expect("stat").uid();
    assert_eq!(owner, nobody.uid.as_raw(), "message file owner");

    let pid = server.pid();
    assert_eq!(proc_status_ids(pid, "Uid:"), vec![nobody.uid.as_raw(); 4]);
    assert_eq!(proc_status_ids(pid, "Gid:"), vec![nogroup.gid.as_raw(); 4]);
    let groups = proc_status_ids(pid, "Groups:");
    assert!(!groups.contains(&0), "still in group root: {groups:?}");
}

#[test]
fn broken_config_at_start_exits_non_zero_naming_the_line() {
    let site = Site::new().file("plugins", "no_such_plugin");
    let mut cmd = site.command();
    cmd.arg("--listen")
        .arg(format!("127.0.0.1:{}", free_port()));
    let (ok, stderr) = run_expecting_exit(cmd);
    assert!(!ok, "started with an unknown plugin:\n{stderr}");
    assert!(stderr.contains("plugins:1"), "{stderr}");
    assert!(stderr.contains("no_such_plugin"), "{stderr}");
}
