//! The sample configuration works as the README's quick start says: mail for example.com
//! lands in `./maildir` of the directory the server runs in, and relaying is refused.

use qpsmtpd_tests::{maildir_messages, qpsmtpd_bin, run_with_input, workspace};
use std::process::Command;
use std::time::Duration;

#[test]
fn sample_config_delivers_into_the_local_maildir() {
    let cwd = tempfile::tempdir().expect("tempdir");
    let mut cmd = Command::new(qpsmtpd_bin());
    cmd.arg("--config-dir")
        .arg(workspace().join("config.sample"))
        .current_dir(cwd.path())
        .env("TCPREMOTEIP", "192.0.2.9");
    let input = "EHLO client.example\r\nMAIL FROM:<a@sender.example>\r\n\
                 RCPT TO:<user@elsewhere.example>\r\nRCPT TO:<user@example.com>\r\nDATA\r\n\
                 From: <a@sender.example>\r\nSubject: quick start\r\n\r\nhello\r\n.\r\nQUIT\r\n";
    let out = run_with_input(cmd, input.as_bytes(), Duration::from_secs(30));
    let replies = String::from_utf8_lossy(&out.stdout);
    let codes: Vec<&str> = replies
        .lines()
        .filter(|l| l.as_bytes().get(3) == Some(&b' '))
        .map(|l| &l[..3])
        .collect();
    assert_eq!(
        codes,
        ["220", "250", "250", "550", "250", "354", "250", "221"],
        "{replies}"
    );
    assert!(replies.contains("550 5.7.1 Relaying denied"), "{replies}");
    let messages = maildir_messages(&cwd.path().join("maildir"));
    assert_eq!(messages.len(), 1, "{replies}");
    assert!(messages[0].contains("Subject: quick start\n"));
    assert!(messages[0].contains("Delivered-To: user@example.com\n"));
}
