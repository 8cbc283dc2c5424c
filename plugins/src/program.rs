//! Running a helper program from a plugin (fortune, uptime): no input, a time limit, a
//! bounded output, and nothing left running afterwards.

use std::io::{self, Read};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// What a program run with [`run`] did.
#[derive(Debug)]
pub(crate) struct Output {
    pub status: ExitStatus,
    /// Its standard output, at most the limit given to [`run`].
    pub stdout: Vec<u8>,
}

/// Runs `cmd` without input, keeping at most `limit` bytes of its standard output (its
/// standard error is discarded). A program that is still running after `timeout` is
/// killed, together with anything it started, and the run is an error.
pub(crate) fn run(cmd: &mut Command, timeout: Duration, limit: u64) -> io::Result<Output> {
    let deadline = Instant::now() + timeout;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        // Its own process group, so that a timeout can stop what it started too.
        .process_group(0)
        .spawn()?;
    let mut stdout = child.stdout.take().expect("stdout is piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let r = (&mut stdout).take(limit).read_to_end(&mut buf).map(|_| buf);
        // Dropping the pipe here stops a program that writes more than we read (SIGPIPE).
        drop(stdout);
        let _ = tx.send(r);
    });
    let kill_group = |child: &std::process::Child| {
        // The child is not reaped yet, so its process group id still belongs to it.
        if let Ok(pid) = i32::try_from(child.id()) {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    };
    let remaining = deadline.saturating_duration_since(Instant::now());
    let read = match rx.recv_timeout(remaining) {
        Ok(r) => r,
        Err(_) => {
            kill_group(&child);
            let _ = child.wait();
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no end of output after {} s", timeout.as_secs_f64()),
            ));
        }
    };
    // The output has ended; give the program until the deadline to exit.
    loop {
        if let Some(status) = child.try_wait()? {
            return read.map(|stdout| Output { status, stdout });
        }
        if Instant::now() >= deadline {
            kill_group(&child);
            let _ = child.wait();
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("still running after {} s", timeout.as_secs_f64()),
            ));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// `exit status 3`, `killed by signal 9`.
pub(crate) fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        _ => status.to_string(),
    }
}

/// Writes an executable script for a test.
#[cfg(test)]
/// Writes an executable script. It is written by a child process, so that no file
/// descriptor open for writing leaks into programs that other test threads start at the
/// same moment (which would make running it fail with "text file busy").
pub(crate) fn script(path: &std::path::Path, body: &str) {
    use std::io::Write;
    let mut child = Command::new("/bin/sh")
        .args(["-c", "cat > \"$1\" && chmod 755 \"$1\"", "sh"])
        .arg(path)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let text = format!("#!/bin/sh\n{body}\n");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success());
}
