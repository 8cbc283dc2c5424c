//! # NAME
//!
//! help - answer the HELP command from help files
//!
//! # DESCRIPTION
//!
//! Answers `HELP` and `HELP COMMAND` with texts the administrator writes, one file per
//! command:
//!
//! ```text
//! C: HELP mail
//! S: 214-2.0.0 MAIL FROM:<address> [parameters]
//! S: 214 2.0.0 Starts a message; <address> receives bounces.
//! ```
//!
//! - `HELP` alone is answered with `214 2.0.0 Try 'HELP COMMAND' for getting help on
//!   COMMAND`.
//! - `HELP COMMAND` is answered with the lines of the help file for COMMAND (the case of
//!   COMMAND does not matter), or with `214 2.0.0 No help available for SMTP command:
//!   command` when there is none.
//! - A COMMAND that is not a command word (letters and digits, up to 12, starting with a
//!   letter) is answered with `501 5.5.4 Invalid command name`, so a request such as
//!   `HELP ../../etc/passwd` can never name a file.
//!
//! With `not_implemented 1`, every `HELP` is answered with `502 5.5.1 Not implemented`
//! instead, for sites that prefer not to say anything about themselves.
//!
//! Without this plugin the server answers `HELP` with three lines naming qpsmtpd.
//!
//! # CONFIGURATION
//!
//! ## not_implemented *0|1*
//!
//! Default: `0`. With `1`, answer every HELP with `502 5.5.1 Not implemented`.
//!
//! ## help_dir *DIR*
//!
//! Default: the directory `help` next to the other control files, if there is one. A
//! directory of help files, each named after its command (`mail`, `rcpt`, `starttls`).
//! A relative DIR is taken relative to the directory that holds `config/plugins`. Files
//! whose names are not command words (such as `README.txt`) and subdirectories are
//! ignored. A DIR that is given but does not exist is an error.
//!
//! ## CMD *FILE*
//!
//! Default: none. Any other `COMMAND FILE` pair names the help file of one command, such
//! as `mail mail.txt` or `auth /usr/local/share/smtp-help/auth`; it takes the place of the
//! command's file in the help directory. A relative FILE is taken relative to the help
//! directory (the `help` directory next to `config/plugins` when there is none). COMMAND
//! must be a command word, and FILE must exist.
//!
//! ## loglevel *N|+N|-N*
//!
//! Default: none. Every plugin takes it: an absolute level (0-7 or a name such as `LOGINFO`)
//! for all of the plugin's log messages, or a shift of their levels by N.
//!
//! ## Files
//!
//! Help files are plain text; each line becomes one line of the `214` reply, and an empty
//! file reads as "no help available". They may be at most 64 KiB. All of them are read
//! once, when the server starts (or reloads).
//!
//! # DIFFERENCES FROM QPSMTPD
//!
//! - The default help directory is `help` beside the control files, not `./help/` in the
//!   server's working directory, and relative paths are taken from there.
//! - Help files are read when the server starts, not for each HELP; a missing help file
//!   or directory named in the arguments, an invalid command word and an unknown argument
//!   are configuration errors (the Perl plugin logged a warning and went on).
//! - An invalid command name is answered with `501 5.5.4` (a bad argument) instead of
//!   `502`, and replies carry enhanced status codes.
//!
//! # SEE ALSO
//!
//! qpsmtpd-plugins(7), qpsmtpd(8)

use qpsmtpd_core::plugin::parse_flag;
use qpsmtpd_core::{
    ConfigError, Context, Hook, Plugin, PluginSpec, Registration, Reply, Setup, Verdict,
};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The largest help file accepted.
const MAX_HELP_FILE: u64 = 64 * 1024;

pub const SPEC: PluginSpec = PluginSpec {
    name: "help",
    factory: new,
    args: &["not_implemented", "help_dir", "CMD"],
    rejects: false,
    example: "not_implemented 0",
};

pub fn new(setup: &Setup<'_>) -> Result<Box<dyn Plugin>, ConfigError> {
    if !setup.args.len().is_multiple_of(2) {
        return Err(setup
            .error("arguments must be pairs: not_implemented 0|1, help_dir DIR, or COMMAND FILE"));
    }
    // Relative paths are taken from the directory holding config/plugins.
    let base = setup
        .origin
        .file
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let mut not_implemented = false;
    let mut help_dir = None;
    let mut files = Vec::new();
    for kv in setup.args.chunks(2) {
        let (key, value) = (kv[0].to_ascii_lowercase(), &kv[1]);
        match key.as_str() {
            "not_implemented" => {
                not_implemented = parse_flag(value).ok_or_else(|| {
                    setup.error(format!("not_implemented must be 0 or 1, not {value:?}"))
                })?;
            }
            "help_dir" => {
                let dir = base.join(value);
                if !dir.is_dir() {
                    return Err(
                        setup.error(format!("help_dir {} is not a directory", dir.display()))
                    );
                }
                help_dir = Some(dir);
            }
            _ if is_command_word(&key) => files.push((key, value.clone())),
            _ => {
                return Err(setup.error(format!(
                    "unknown argument {:?} (known: not_implemented, help_dir, or a command name)",
                    kv[0]
                )));
            }
        }
    }
    let help_dir = help_dir.or_else(|| setup.config.locate("help").filter(|d| d.is_dir()));
    let mut texts = match &help_dir {
        Some(dir) => read_help_dir(dir).map_err(|e| setup.error(e))?,
        None => HashMap::new(),
    };
    let file_base = help_dir.unwrap_or_else(|| base.join("help"));
    for (cmd, file) in files {
        let path = file_base.join(&file);
        let text = read_help_file(&path).map_err(|e| setup.error(e))?;
        texts.insert(cmd, HelpText { text, path });
    }
    Ok(Box::new(Help {
        not_implemented,
        texts,
    }))
}

/// A command verb as the server reads them: a letter, then letters or digits, 12 at most.
fn is_command_word(s: &str) -> bool {
    let b = s.as_bytes();
    (1..=12).contains(&b.len())
        && b[0].is_ascii_alphabetic()
        && b.iter().all(u8::is_ascii_alphanumeric)
}

fn read_help_file(path: &Path) -> Result<String, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("help file {}: {e}", path.display()))?;
    if !meta.is_file() {
        return Err(format!("help file {} is not a file", path.display()));
    }
    if meta.len() > MAX_HELP_FILE {
        return Err(format!(
            "help file {} is larger than {MAX_HELP_FILE} bytes",
            path.display()
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| format!("help file {}: {e}", path.display()))?;
    Ok(String::from_utf8_lossy(&bytes).trim_end().to_string())
}

/// The help files of a directory, by lower-cased command name.
fn read_help_dir(dir: &Path) -> Result<HashMap<String, HelpText>, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("help_dir {}: {e}", dir.display()))?;
    let mut texts: HashMap<String, HelpText> = HashMap::new();
    for entry in entries {
        let entry = entry.map_err(|e| format!("help_dir {}: {e}", dir.display()))?;
        let path = entry.path();
        let Some(name) = entry.file_name().to_str().map(str::to_ascii_lowercase) else {
            continue;
        };
        if !is_command_word(&name) || !path.is_file() {
            continue;
        }
        if let Some(other) = texts.get(&name) {
            return Err(format!(
                "{} and {} are help files for the same command",
                other.path.display(),
                path.display()
            ));
        }
        let text = read_help_file(&path)?;
        texts.insert(name, HelpText { text, path });
    }
    Ok(texts)
}

struct HelpText {
    text: String,
    path: PathBuf,
}

struct Help {
    not_implemented: bool,
    texts: HashMap<String, HelpText>,
}

impl Plugin for Help {
    fn hooks(&self) -> Vec<Registration> {
        vec![Hook::Help.into()]
    }

    fn help(&self, cx: &mut Context<'_>, arg: &str) -> Verdict {
        if self.not_implemented {
            cx.pass("HELP answered as not implemented");
            return Verdict::done(Reply::new(502, "5.5.1", "Not implemented"));
        }
        let Some(word) = arg.split_whitespace().next() else {
            cx.pass("HELP without a command");
            return Verdict::done(Reply::new(
                214,
                "2.0.0",
                "Try 'HELP COMMAND' for getting help on COMMAND",
            ));
        };
        if !is_command_word(word) {
            cx.fail(format!("HELP for an invalid command name {word:?}"));
            return Verdict::done(Reply::new(501, "5.5.4", "Invalid command name"));
        }
        let cmd = word.to_ascii_lowercase();
        match self.texts.get(&cmd) {
            Some(help) if !help.text.is_empty() => {
                cx.pass(format!("HELP {cmd} from {}", help.path.display()));
                Verdict::done(Reply::new(214, "2.0.0", &help.text))
            }
            _ => {
                cx.pass(format!("no help for {cmd}"));
                Verdict::done(Reply::new(
                    214,
                    "2.0.0",
                    &format!("No help available for SMTP command: {cmd}"),
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use qpsmtpd_core::testing::{Harness, LogCapture, TestServer};

    fn harness(line: &str) -> Harness {
        Harness::new()
            .catalogue(crate::CATALOGUE)
            .file("plugins", line)
    }

    fn help(server: &TestServer, cmd: &str) -> String {
        let mut s = server.session();
        s.connect();
        s.command(cmd)
    }

    #[test]
    fn serves_the_default_help_directory() {
        let log = LogCapture::default();
        let server = harness("help")
            .file("help/mail", "MAIL FROM:<address>\nStarts a message.\n\n")
            .file("help/RCPT", "RCPT TO:<address>")
            .file("help/empty", "")
            .file("help/README.txt", "not a command")
            .file("help/sub/data", "in a subdirectory")
            .plugin("capture", log.clone())
            .build()
            .unwrap();
        assert_eq!(
            help(&server, "HELP"),
            "214 2.0.0 Try 'HELP COMMAND' for getting help on COMMAND\r\n"
        );
        assert_eq!(
            help(&server, "HELP Mail FROM"),
            "214-2.0.0 MAIL FROM:<address>\r\n214 2.0.0 Starts a message.\r\n"
        );
        assert_eq!(
            help(&server, "help rcpt"),
            "214 2.0.0 RCPT TO:<address>\r\n"
        );
        for cmd in ["empty", "data", "vrfy"] {
            assert_eq!(
                help(&server, &format!("HELP {cmd}")),
                format!("214 2.0.0 No help available for SMTP command: {cmd}\r\n")
            );
        }
        assert_eq!(
            help(&server, "HELP ../../etc/passwd"),
            "501 5.5.4 Invalid command name\r\n"
        );
        let lines = log.of_plugin("help");
        assert_eq!(lines.len(), 7, "{lines:?}");
        assert_eq!(lines[0], "INFO pass: HELP without a command");
        assert!(
            lines[1].starts_with("INFO pass: HELP mail from ")
                && lines[1].ends_with("config/help/mail"),
            "{lines:?}"
        );
        assert_eq!(
            lines[6],
            "INFO fail: HELP for an invalid command name \"../../etc/passwd\""
        );
    }

    #[test]
    fn help_dir_and_command_files() {
        let h = harness("");
        let dir = h.dir().join("texts");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("mail"), "mail from the directory\n").unwrap();
        std::fs::write(dir.join("ehlo.txt"), "EHLO <domain>\n").unwrap();
        let abs = h.dir().join("quit-help");
        std::fs::write(&abs, "QUIT ends the session\n").unwrap();
        let line = format!(
            "help help_dir ../texts EHLO ehlo.txt quit {}",
            abs.display()
        );
        let server = h.file("plugins", &line).build().unwrap();
        assert_eq!(
            help(&server, "HELP MAIL"),
            "214 2.0.0 mail from the directory\r\n"
        );
        assert_eq!(help(&server, "HELP ehlo"), "214 2.0.0 EHLO <domain>\r\n");
        assert_eq!(
            help(&server, "HELP quit"),
            "214 2.0.0 QUIT ends the session\r\n"
        );
    }

    #[test]
    fn not_implemented() {
        let server = harness("help not_implemented 1 mail mail")
            .file("help/mail", "text")
            .build()
            .unwrap();
        assert_eq!(help(&server, "HELP"), "502 5.5.1 Not implemented\r\n");
        assert_eq!(help(&server, "HELP mail"), "502 5.5.1 Not implemented\r\n");
    }

    #[test]
    fn without_the_plugin_the_core_answers() {
        let server = harness("").build().unwrap();
        assert!(help(&server, "HELP").starts_with("214-2.0.0 This is qpsmtpd"));
    }

    #[test]
    fn bad_arguments_are_refused() {
        for (line, want) in [
            ("help not_implemented", "arguments must be pairs"),
            (
                "help not_implemented maybe",
                "not_implemented must be 0 or 1",
            ),
            ("help help_dir nowhere", "is not a directory"),
            ("help mail nowhere.txt", "nowhere.txt: No such file"),
            ("help bogus_arg 1", "unknown argument \"bogus_arg\""),
            ("help 2mail x", "unknown argument \"2mail\""),
            ("help averyveryverylongcommand x", "unknown argument"),
        ] {
            let err = harness(line).build().expect_err(line).to_string();
            assert!(
                err.contains("plugins:1: help: ") && err.contains(want),
                "{line}: {err}"
            );
        }
        let err = harness("help")
            .file("help/mail", "a")
            .file("help/MAIL", "b")
            .build()
            .expect_err("two files for one command")
            .to_string();
        assert!(err.contains("are help files for the same command"), "{err}");
        let err = harness("help")
            .file("help/data", &"x".repeat(70_000))
            .build()
            .expect_err("big file")
            .to_string();
        assert!(err.contains("is larger than 65536 bytes"), "{err}");
    }
}
