//! The manual pages in `man/`, generated from the source so that the documentation and the
//! code cannot drift apart (design §2):
//!
//! - `qpsmtpd.8` from the command-line definition ([`qpsmtpd_inetd::cli::Args`], through
//!   `clap_mangen`), with FILES from the core's table of control files
//!   ([`qpsmtpd_core::core_config::CORE_FILES`]), ENVIRONMENT, SIGNALS and SEE ALSO added;
//! - `qpsmtpd-<plugin>.7`, one per plugin of [`qpsmtpd_plugins::CATALOGUE`], from the `//!`
//!   markdown at the top of the plugin's source file (`/` in the name becomes `-`:
//!   `qpsmtpd-queue-maildir.7`);
//! - `qpsmtpd-plugins.7`, the overview: every plugin with its one-line summary, the
//!   `config/plugins` syntax and the conventions all plugins share.
//!
//! The markdown is parsed with `pulldown-cmark` and written with the `roff` crate, which
//! escapes text so that nothing in a plugin's documentation can become a roff request:
//! headings become `.SH`/`.SS`, `code` bold, *emphasis* italic, lists `.IP`, code blocks
//! `.nf`/`.fi`, tables `.TP` entries. `tests/tests/man.rs` compares the pages with `man/` and
//! rewrites them when `QPSMTPD_WRITE_MAN=1` is set.

use clap::CommandFactory;
use pulldown_cmark::{Event, HeadingLevel, Options, Parser, Tag, TagEnd};
use qpsmtpd_core::core_config::CORE_FILES;
use roff::{Inline, Roff, bold, italic, roman};
use std::path::{Path, PathBuf};

/// The version shown in every page's title line.
const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The sections every plugin manual must have.
pub const REQUIRED_SECTIONS: &[&str] = &["NAME", "DESCRIPTION", "CONFIGURATION"];

/// One generated manual page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page {
    /// The file name in `man/`: `qpsmtpd.8`, `qpsmtpd-queue-maildir.7`.
    pub file: String,
    /// The roff source.
    pub text: String,
}

/// A plugin's manual as found in its source.
#[derive(Clone, Debug)]
pub struct PluginDoc {
    /// The catalogue name: `queue/maildir`.
    pub name: &'static str,
    /// The source file it was read from.
    pub source: PathBuf,
    /// The `//!` comment, as markdown.
    pub markdown: String,
    /// The NAME section's line: `queue/maildir - deliver accepted mail into a maildir`.
    pub name_line: String,
}

impl PluginDoc {
    /// The page name, `qpsmtpd-queue-maildir`.
    pub fn page(&self) -> String {
        page_name(self.name)
    }

    /// The one-line summary: the NAME line after `name - `.
    pub fn summary(&self) -> &str {
        self.name_line
            .split_once(" - ")
            .map_or(self.name_line.as_str(), |(_, s)| s)
    }
}

/// The page name of a plugin: `qpsmtpd-` and the name with `/` replaced by `-`.
pub fn page_name(plugin: &str) -> String {
    format!("qpsmtpd-{}", plugin.replace('/', "-"))
}

/// Every page, `qpsmtpd.8` first, then `qpsmtpd-plugins.7`, then the plugins in catalogue
/// order. `workspace` is the checkout (where `plugins/src` is).
pub fn pages(workspace: &Path) -> Result<Vec<Page>, String> {
    let docs = plugin_docs(workspace)?;
    let mut pages = vec![
        Page {
            file: "qpsmtpd.8".into(),
            text: qpsmtpd_page(),
        },
        Page {
            file: "qpsmtpd-plugins.7".into(),
            text: overview_page(&docs),
        },
    ];
    for doc in &docs {
        pages.push(Page {
            file: format!("{}.7", doc.page()),
            text: plugin_page(doc),
        });
    }
    Ok(pages)
}

/// The source file of a catalogue plugin: `plugins/src/<name>.rs`, which is also where the
/// `#[path]` attributes of the groups put the files with a `-` in their name
/// (`queue/qmail-queue.rs`); `<name>` with `_` for `-`, or `<name>/mod.rs`, also do.
pub fn plugin_source(workspace: &Path, name: &str) -> Result<PathBuf, String> {
    let src = workspace.join("plugins/src");
    let candidates = [
        src.join(format!("{name}.rs")),
        src.join(format!("{}.rs", name.replace('-', "_"))),
        src.join(name).join("mod.rs"),
    ];
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .ok_or_else(|| {
            format!(
                "plugin {name}: no source file (looked for {})",
                candidates[0].display()
            )
        })
}

/// The leading `//!` comment of a Rust source file, with the `//!` and one space taken off
/// each line.
pub fn module_doc(source: &str) -> String {
    let mut out = String::new();
    for line in source.lines() {
        match line.strip_prefix("//!") {
            Some(rest) => {
                out.push_str(rest.strip_prefix(' ').unwrap_or(rest));
                out.push('\n');
            }
            None if out.is_empty() && line.trim().is_empty() => {}
            None => break,
        }
    }
    out
}

/// Reads and checks the manual of every plugin in the catalogue. All problems are reported
/// together.
pub fn plugin_docs(workspace: &Path) -> Result<Vec<PluginDoc>, String> {
    let mut docs = Vec::new();
    let mut errors = Vec::new();
    for spec in qpsmtpd_plugins::CATALOGUE {
        match plugin_doc(workspace, spec.name) {
            Ok(d) => docs.push(d),
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(docs)
    } else {
        Err(errors.join("\n"))
    }
}

/// Reads and checks one plugin's manual.
pub fn plugin_doc(workspace: &Path, name: &'static str) -> Result<PluginDoc, String> {
    let source = plugin_source(workspace, name)?;
    let text = std::fs::read_to_string(&source)
        .map_err(|e| format!("plugin {name}: {}: {e}", source.display()))?;
    let markdown = module_doc(&text);
    let at = || format!("plugin {name} ({})", source.display());
    let sections = sections(&markdown);
    if sections.first().map(String::as_str) != Some("NAME") {
        return Err(format!("{}: the //! manual must start with `# NAME`", at()));
    }
    let missing: Vec<&str> = REQUIRED_SECTIONS
        .iter()
        .copied()
        .filter(|s| !sections.iter().any(|h| h == s))
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "{}: the //! manual has no {} section",
            at(),
            missing.join(", ")
        ));
    }
    let name_line = first_paragraph_after(&markdown, "NAME")
        .ok_or_else(|| format!("{}: the NAME section is empty", at()))?;
    if !name_line.starts_with(&format!("{name} - ")) {
        return Err(format!(
            "{}: the NAME line must read `{name} - summary`, not {name_line:?}",
            at()
        ));
    }
    Ok(PluginDoc {
        name,
        source,
        markdown,
        name_line,
    })
}

/// The `##` headings of the CONFIGURATION section: (the heading's first word, the text of
/// the paragraph that follows it). `## only *0|1*` gives `("only", "Default: 0. ...")`.
pub fn argument_sections(markdown: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut h1: Option<String> = None;
    let mut in_configuration = false;
    let mut h2: Option<String> = None;
    let mut pending: Option<String> = None;
    let mut para: Option<String> = None;
    for event in parser(markdown) {
        match event {
            Event::Start(Tag::Heading { level, .. }) => {
                if let (Some(name), Some(p)) = (pending.take(), para.take()) {
                    out.push((name, p));
                }
                match level {
                    HeadingLevel::H1 => h1 = Some(String::new()),
                    HeadingLevel::H2 if in_configuration => h2 = Some(String::new()),
                    _ => {}
                }
            }
            Event::End(TagEnd::Heading(HeadingLevel::H1)) => {
                if let Some(name) = pending.take() {
                    out.push((name, String::new()));
                }
                in_configuration = h1.take().is_some_and(|h| h.trim() == "CONFIGURATION");
            }
            Event::End(TagEnd::Heading(HeadingLevel::H2)) => {
                if let Some(h) = h2.take() {
                    let first = h.split_whitespace().next().unwrap_or("").to_string();
                    pending = Some(first);
                }
            }
            Event::Start(Tag::Paragraph) if pending.is_some() && para.is_none() => {
                para = Some(String::new());
            }
            Event::End(TagEnd::Paragraph) => {
                if let (Some(name), Some(p)) = (pending.take(), para.take()) {
                    out.push((name, p.trim().to_string()));
                }
            }
            Event::Text(t) | Event::Code(t) => {
                if let Some(h) = h1.as_mut().or(h2.as_mut()) {
                    h.push_str(&t);
                } else if let Some(p) = para.as_mut() {
                    p.push_str(&t);
                }
            }
            Event::SoftBreak | Event::HardBreak => {
                if let Some(p) = para.as_mut() {
                    p.push(' ');
                }
            }
            _ => {}
        }
    }
    if let Some(name) = pending {
        out.push((name, para.unwrap_or_default()));
    }
    out
}

fn parser(markdown: &str) -> Parser<'_> {
    Parser::new_ext(
        markdown,
        Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH,
    )
}

/// The plain text of the top-level (`#`) headings.
fn sections(markdown: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    for event in parser(markdown) {
        match event {
            Event::Start(Tag::Heading {
                level: HeadingLevel::H1,
                ..
            }) => current = Some(String::new()),
            Event::End(TagEnd::Heading(HeadingLevel::H1)) => out.extend(current.take()),
            Event::Text(t) | Event::Code(t) => {
                if let Some(c) = current.as_mut() {
                    c.push_str(&t);
                }
            }
            _ => {}
        }
    }
    out.into_iter().map(|s| s.trim().to_string()).collect()
}

/// The plain text of the first paragraph of the `#` section `heading`.
fn first_paragraph_after(markdown: &str, heading: &str) -> Option<String> {
    let mut in_h1: Option<String> = None;
    let mut in_section = false;
    let mut para: Option<String> = None;
    for event in parser(markdown) {
        match event {
            Event::Start(Tag::Heading {
                level: HeadingLevel::H1,
                ..
            }) => in_h1 = Some(String::new()),
            Event::End(TagEnd::Heading(HeadingLevel::H1)) => {
                in_section = in_h1.take().is_some_and(|h| h.trim() == heading);
            }
            Event::Start(Tag::Paragraph) if in_section => para = Some(String::new()),
            Event::End(TagEnd::Paragraph) if para.is_some() => {
                return para.map(|p| p.trim().to_string());
            }
            Event::Text(t) | Event::Code(t) => {
                if let Some(h) = in_h1.as_mut() {
                    h.push_str(&t);
                } else if let Some(p) = para.as_mut() {
                    p.push_str(&t);
                }
            }
            Event::SoftBreak | Event::HardBreak => {
                if let Some(p) = para.as_mut() {
                    p.push(' ');
                }
            }
            _ => {}
        }
    }
    None
}

// ---------------------------------------------------------------------------------------
// Pages

/// `qpsmtpd.8`: clap_mangen's page for the command line, with FILES, ENVIRONMENT and
/// SIGNALS before its VERSION section and SEE ALSO at the end.
pub fn qpsmtpd_page() -> String {
    let cmd = <qpsmtpd_inetd::cli::Args as CommandFactory>::command();
    let man = clap_mangen::Man::new(cmd).section("8");
    let mut buf = Vec::new();
    man.render(&mut buf)
        .expect("rendering into a Vec cannot fail");
    let clap_page = String::from_utf8(buf).expect("clap_mangen writes UTF-8");

    // Our own title line, the same form as on the other pages.
    let mut page = String::new();
    for line in clap_page.lines() {
        if line.starts_with(".TH ") {
            page.push_str(&body(&title("qpsmtpd", "8")));
        } else {
            page.push_str(line);
            page.push('\n');
        }
    }

    let mut extra = Roff::new();
    files_section(&mut extra);
    environment_section(&mut extra);
    signals_section(&mut extra);
    let extra = body(&extra);
    match page.find("\n.SH VERSION\n") {
        Some(i) => page.insert_str(i + 1, &extra),
        None => page.push_str(&extra),
    }

    let mut see_also = Roff::new();
    see_also.control("SH", ["SEE ALSO"]);
    see_also.text(inl(
        "qpsmtpd-plugins(7) and the page of each plugin it lists, tcpserver(1), \
         tcprules(1), xinetd.conf(5), systemd.socket(5), qmail-smtpd(8), qmail-control(5)",
    ));
    page.push_str(&body(&see_also));
    finish(page)
}

fn files_section(r: &mut Roff) {
    r.control("SH", ["FILES"]);
    r.text(inl(
        "Control files are looked up one by one in `--config-dir`, then `$QPSMTPD_CONFIG`, \
         then `/etc/qpsmtpd`, then `$QMAIL/control`: the first directory that has the file \
         wins. One value per line, `#` starts a comment, `$include FILE` or \
         `$include DIR` reads another file or every file of a directory, and `NAME.cdb` is a \
         constant database. The files the server itself reads are listed here, with their \
         defaults; each plugin's page lists the files that plugin reads.",
    ));
    r.control("TP", []);
    for (i, f) in CORE_FILES.iter().enumerate() {
        if i > 0 {
            r.control("TP", []);
        }
        r.text([bold(f.name)]);
        r.text(code_spans(f.meaning));
        r.control("br", []);
        let mut d = vec![roman("Default: ")];
        d.extend(code_spans(f.default));
        r.text(d);
    }
}

fn environment_section(r: &mut Roff) {
    r.control("SH", ["ENVIRONMENT"]);
    let vars: &[(&[&str], &str)] = &[
        (
            &["QPSMTPD_CONFIG"],
            "A directory searched for control files after `--config-dir` and before \
             `/etc/qpsmtpd`.",
        ),
        (
            &["QMAIL"],
            "qmail's home directory, `/var/qmail` when unset or empty: `$QMAIL/control` is \
             the last directory searched for control files.",
        ),
        (
            &["TCPREMOTEIP", "TCPREMOTEPORT"],
            "The client's address and port, as tcpserver sets them. Without `--listen`, \
             the client is taken from these, else from `REMOTE_HOST`, else from the socket \
             on standard input (inetd, systemd `Accept=yes`). With `--listen` the server \
             knows the client from the connection it accepted, and the `TCP*` variables \
             and `REMOTE_HOST` are not read.",
        ),
        (
            &["TCPREMOTEHOST"],
            "The client's host name, when tcpserver looked it up (without `-H`).",
        ),
        (
            &["TCPREMOTEINFO"],
            "The client's ident answer, when tcpserver asked for it (without `-R`).",
        ),
        (
            &["TCPLOCALIP", "TCPLOCALPORT", "TCPLOCALHOST"],
            "The server's own address, port and name for this connection; when unset, the \
             address and port come from the socket on standard input.",
        ),
        (
            &["REMOTE_HOST"],
            "The client's address as xinetd sets it; used when `TCPREMOTEIP` is not set.",
        ),
        (
            &["RELAYCLIENT"],
            "Set, even to the empty string, by a tcprules entry such as \
             `192.168.:allow,RELAYCLIENT=\"\"`: the relay plugin makes the client a relay \
             client. Any other variable a rule sets is visible to plugins as well \
             (`QMAILQUEUE`, for instance). With `--listen`, the environment the server was \
             started with applies to every connection.",
        ),
    ];
    for (names, text) in vars {
        r.control("TP", []);
        let mut tag = Vec::new();
        for (i, n) in names.iter().enumerate() {
            if i > 0 {
                tag.push(roman(", "));
            }
            tag.push(bold(*n));
        }
        r.text(tag);
        r.text(code_spans(text));
    }
}

fn signals_section(r: &mut Roff) {
    r.control("SH", ["SIGNALS"]);
    r.text(inl("With `--listen`, the forkserver:"));
    r.control("TP", []);
    r.text([bold("SIGHUP")]);
    r.text(inl(
        "re-reads the configuration and reloads the plugins; connections accepted from then \
         on use the new ones. A broken configuration is logged and the old one kept.",
    ));
    r.control("TP", []);
    r.text([bold("SIGTERM"), roman(", "), bold("SIGINT")]);
    r.text(inl(
        "graceful stop: stop accepting connections, tell each open session `421 4.3.2` at \
         its next command, wait up to `--shutdown-timeout` seconds for the sessions to end, \
         then kill those left and exit.",
    ));
    r.control("PP", []);
    r.text(inl(
        "Without `--listen`, `SIGTERM` and `SIGINT` end the session at its next wait for the \
         client, with a 421 reply, rather than in the middle of one.",
    ));
}

/// `qpsmtpd-plugins.7`, the overview of the plugins.
pub fn overview_page(docs: &[PluginDoc]) -> String {
    let mut r = title("qpsmtpd-plugins", "7");
    r.control("SH", ["NAME"]);
    r.text([roman(
        "qpsmtpd-plugins - the plugins of qpsmtpd-rs and how to load them",
    )]);

    r.control("SH", ["DESCRIPTION"]);
    r.text(inl(
        "The SMTP engine of qpsmtpd(8) only speaks the protocol. Everything else (which \
         hosts may connect, who may relay, which domains mail is accepted for, where accepted \
         mail goes) is done by plugins hooked into the stages of the SMTP conversation. The \
         plugins are named and configured as in qpsmtpd, so `config/plugins` lines carry over \
         unchanged. Each plugin has its own page, listed under PLUGINS.",
    ));

    r.control("SH", ["LOADING PLUGINS"]);
    r.text(inl(
        "`config/plugins` lists the plugins to load, one per line, as `name [args...]`; \
         blank lines and `#` comments are ignored and `$include` works as in every control \
         file. For each hook the plugins run in the order of the file, so put the plugins \
         that only refuse (`relay`, recipient checks) before the one that accepts (`rcpt_ok`), \
         and the queue plugin last.",
    ));
    r.control("IP", ["\\(bu", "2"]);
    r.text(inl(
        "Names carry their group as in qpsmtpd: `queue/maildir`, `logging/warn`.",
    ));
    r.control("IP", ["\\(bu", "2"]);
    r.text(inl(
        "The arguments are the plugin's, as its page describes them: positional values, \
         `key value` pairs, or both.",
    ));
    r.control("IP", ["\\(bu", "2"]);
    r.text(inl(
        "The same plugin can be loaded more than once, with different arguments, by giving \
         each copy an instance suffix: `name:N`, where *N* is letters and digits \
         (`queue/smtp-forward:backup`). Logs name the copy `queue::smtp-forward:backup`.",
    ));
    r.control("IP", ["\\(bu", "2"]);
    r.text(inl(
        "`loglevel` *N*, anywhere among the arguments, is taken by the server and not \
         passed to the plugin: an absolute level (`0`-`7`, or a name such as `LOGINFO`) for \
         all of the plugin's messages, or `+N`/`-N` to shift their levels.",
    ));
    r.control("IP", ["\\(bu", "2"]);
    r.text(inl(
        "`config/logging` lists the logging plugins (`logging/...`), with the same syntax; \
         they are loaded before all others.",
    ));
    r.control("PP", []);
    r.text(inl(
        "An unknown plugin or an argument a plugin does not accept stops the server from \
         starting (or, on reload, keeps the old configuration), with the file and line named; \
         a session started with a broken configuration answers `421 4.3.0`. For example:",
    ));
    code_block(
        &mut r,
        0,
        "# config/plugins\n\
         hosts_allow\n\
         relay\n\
         rcpt_ok loglevel +1\n\
         queue/maildir /var/mail/catchall\n",
    );

    r.control("SH", ["CONVENTIONS"]);
    r.text(inl(
        "What is learnt about one plugin carries over to the others. A plugin that can \
         refuse mail takes:",
    ));
    r.control("TP", []);
    r.text([bold("reject"), roman(" "), italic("0|1|naughty")]);
    r.text(inl(
        "`1`: refuse when the check fails. `0`: only log `fail, tolerated` and let the \
         session go on. `naughty`: note the refusal and let the `naughty` plugin deliver it \
         later. The default is on the plugin's page.",
    ));
    r.control("TP", []);
    r.text([
        bold("reject_type"),
        roman(" "),
        italic("temp|perm|disconnect|temp_disconnect"),
    ]);
    r.text(inl(
        "How to refuse: `temp` with a 4xx reply, `perm` with a 5xx reply, `disconnect` with \
         a 5xx reply and closing the connection, `temp_disconnect` with a 421 and closing. \
         qpsmtpd's `soft` and `hard` are accepted for `temp` and `perm`.",
    ));
    r.control("TP", []);
    r.text([bold("loglevel"), roman(" "), italic("N|+N|-N")]);
    r.text(inl("Taken by every plugin (see above)."));
    r.control("PP", []);
    r.text(inl(
        "Each plugin logs one line at level INFO for each decision it makes, starting with \
         `pass`, `fail`, `skip` or `error`. Relay clients, authenticated users and \
         whitelisted hosts are immune to content rejections. A plugin that fails (its daemon \
         is down, a lookup times out) never lets a message through that it should have \
         refused: the failure is logged as `error` and the plugin's documented policy decides \
         whether the client is let through or told to try again later.",
    ));

    r.control("SH", ["PLUGINS"]);
    let mut sorted: Vec<&PluginDoc> = docs.iter().collect();
    sorted.sort_by_key(|d| d.name);
    for d in &sorted {
        r.control("TP", []);
        r.text([bold(d.name)]);
        r.text([roman(d.summary())]);
        r.control("br", []);
        r.text([bold(d.page()), roman("(7)")]);
    }

    r.control("SH", ["SEE ALSO"]);
    let mut refs = vec![roman("qpsmtpd(8)")];
    for d in &sorted {
        refs.push(roman(format!(", {}(7)", d.page())));
    }
    r.text(refs);
    finish(r.render())
}

/// A plugin's page, from its markdown.
pub fn plugin_page(doc: &PluginDoc) -> String {
    let mut r = title(&doc.page(), "7");
    markdown_to_roff(&doc.markdown, &mut r);
    finish(r.render())
}

// ---------------------------------------------------------------------------------------
// Building blocks

/// `.TH TITLE SECTION "" "qpsmtpd-rs VERSION" "qpsmtpd-rs"` (no date, so the pages only
/// change when the source does).
fn title(name: &str, section: &str) -> Roff {
    let source = format!("qpsmtpd-rs {VERSION}");
    let mut r = Roff::new();
    r.control("TH", [name, section, "\"\"", source.as_str(), "qpsmtpd-rs"]);
    r
}

/// A rendered fragment without the roff crate's preamble (which defines the apostrophe
/// string once per page).
fn body(r: &Roff) -> String {
    r.render()
        .lines()
        .filter(|l| !l.starts_with(".ie \\n(.g .ds Aq") && !l.starts_with(".el .ds Aq"))
        .fold(String::new(), |mut s, l| {
            s.push_str(l);
            s.push('\n');
            s
        })
}

/// Characters beyond ASCII as groff's `\[uXXXX]`, so that the page reads the same whatever
/// the input encoding groff assumes. (The roff crate has escaped every backslash in the
/// text already, so this cannot combine with anything that came from the source.)
fn finish(page: String) -> String {
    let mut out = String::with_capacity(page.len());
    for c in page.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            out.push_str(&format!("\\[u{:04X}]", c as u32));
        }
    }
    out
}

/// Text with `code` in bold and *words* in italic (for the text written here).
fn inl(text: &str) -> Vec<Inline> {
    let mut out = Vec::new();
    let mut font = Font::Roman;
    let mut cur = String::new();
    for c in text.chars() {
        let toggle = match c {
            '`' if font != Font::Italic => Some(Font::Bold),
            '*' if font != Font::Bold => Some(Font::Italic),
            _ => None,
        };
        match toggle {
            Some(f) => {
                if !cur.is_empty() {
                    out.push(font.inline(std::mem::take(&mut cur)));
                }
                font = if font == f { Font::Roman } else { f };
            }
            None => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(font.inline(cur));
    }
    out
}

/// Text with `code` in bold (for the core's table, whose texts may contain `*`).
fn code_spans(text: &str) -> Vec<Inline> {
    text.split('`')
        .enumerate()
        .filter(|(_, s)| !s.is_empty())
        .map(|(i, s)| if i % 2 == 1 { bold(s) } else { roman(s) })
        .collect()
}

/// A code block in no-fill mode, indented by `indent + 4` from the current margin
/// (`indent` is the indentation of the list item it is in, if any). `.sp` rather than a
/// paragraph macro: `.IP ""` before `.nf` would leave an empty tag line.
fn code_block(r: &mut Roff, indent: usize, code: &str) {
    let indent = (indent + 4).to_string();
    r.control("sp", []);
    r.control("RS", [indent.as_str()]);
    r.control("nf", []);
    for line in code.strip_suffix('\n').unwrap_or(code).lines() {
        r.text([roman(line)]);
    }
    r.control("fi", []);
    r.control("RE", []);
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Font {
    Roman,
    Bold,
    Italic,
}

impl Font {
    fn inline(self, text: String) -> Inline {
        match self {
            Font::Roman => roman(text),
            Font::Bold => bold(text),
            Font::Italic => italic(text),
        }
    }
}

#[derive(Clone, Debug)]
enum Seg {
    Text(Font, String),
    Break,
}

/// One output text line (a paragraph, a heading, a table cell) being collected.
#[derive(Clone, Debug, Default)]
struct Line(Vec<Seg>);

impl Line {
    fn push(&mut self, font: Font, text: &str) {
        // A line must not start with white space (roff would break there).
        let at_start = match self.0.last() {
            None | Some(Seg::Break) => true,
            Some(Seg::Text(_, s)) => s.ends_with('\n'),
        };
        let text = if at_start { text.trim_start() } else { text };
        if text.is_empty() {
            return;
        }
        // Same-font neighbours are merged, so that the roff crate sees (and escapes) a
        // period or apostrophe at the start of a continuation line.
        match self.0.last_mut() {
            Some(Seg::Text(f, s)) if *f == font => s.push_str(text),
            _ => self.0.push(Seg::Text(font, text.to_string())),
        }
    }

    /// A soft line break: a new output line, same paragraph.
    fn soft_break(&mut self) {
        match self.0.last_mut() {
            Some(Seg::Text(_, s)) if !s.ends_with('\n') => {
                let trimmed = s.trim_end().len();
                s.truncate(trimmed);
                s.push('\n');
            }
            _ => {}
        }
    }

    fn hard_break(&mut self) {
        self.0.push(Seg::Break);
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn plain(&self) -> String {
        self.0
            .iter()
            .map(|s| match s {
                Seg::Text(_, t) => t.replace('\n', " "),
                Seg::Break => " ".into(),
            })
            .collect()
    }

    /// The text if it is plain roman with only characters that are safe in a macro
    /// argument.
    fn simple(&self) -> Option<&str> {
        match self.0.as_slice() {
            [Seg::Text(Font::Roman, s)]
                if s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || " _/.,:;()+=@<>|".contains(c)) =>
            {
                Some(s.trim())
            }
            _ => None,
        }
    }

    fn inlines(mut self, force: Option<Font>) -> Vec<Inline> {
        while let Some(Seg::Break) = self.0.last() {
            self.0.pop();
        }
        if let Some(Seg::Text(_, s)) = self.0.last_mut() {
            let trimmed = s.trim_end().len();
            s.truncate(trimmed);
        }
        self.0
            .into_iter()
            .map(|s| match s {
                Seg::Text(f, t) => force.unwrap_or(f).inline(t),
                Seg::Break => Inline::LineBreak,
            })
            .collect()
    }
}

#[derive(Debug)]
struct List {
    next: Option<u64>,
    indent: usize,
}

#[derive(Debug, Default)]
struct Table {
    /// (header?, cells)
    rows: Vec<(bool, Vec<Line>)>,
}

/// Markdown events → roff.
struct Render<'r> {
    r: &'r mut Roff,
    line: Line,
    bold: usize,
    italic: usize,
    lists: Vec<List>,
    /// An `.IP` with the item's tag was just written: its first block needs no break.
    item_start: bool,
    /// A `.SH`/`.SS` was just written: the first paragraph needs no break.
    section_start: bool,
    code: Option<String>,
    table: Option<Table>,
    /// Links being read: destination, and the link's text so far.
    links: Vec<(String, String)>,
}

/// Writes the markdown `md` to `r`.
fn markdown_to_roff(md: &str, r: &mut Roff) {
    let mut w = Render {
        r,
        line: Line::default(),
        bold: 0,
        italic: 0,
        lists: Vec::new(),
        item_start: false,
        section_start: false,
        code: None,
        table: None,
        links: Vec::new(),
    };
    for event in parser(md) {
        w.event(event);
    }
    w.flush();
}

impl Render<'_> {
    fn font(&self) -> Font {
        if self.bold > 0 {
            Font::Bold
        } else if self.italic > 0 {
            Font::Italic
        } else {
            Font::Roman
        }
    }

    /// Where inline text goes: the open table cell, or the current line.
    fn target(&mut self) -> &mut Line {
        if let Some(t) = self.table.as_mut()
            && let Some(cell) = t.rows.last_mut().and_then(|(_, cells)| cells.last_mut())
        {
            return cell;
        }
        &mut self.line
    }

    fn text(&mut self, font: Font, text: &str) {
        if let Some(code) = self.code.as_mut() {
            code.push_str(text);
            return;
        }
        for (_, t) in self.links.iter_mut() {
            t.push_str(text);
        }
        self.target().push(font, text);
    }

    fn flush(&mut self) {
        let line = std::mem::take(&mut self.line);
        if !line.is_empty() {
            self.r.text(line.inlines(None));
        }
    }

    /// Starts a paragraph.
    fn para_break(&mut self) {
        self.flush();
        if std::mem::take(&mut self.item_start) || std::mem::take(&mut self.section_start) {
            return;
        }
        match self.lists.last() {
            Some(l) => {
                let indent = l.indent.to_string();
                self.r.control("IP", ["\"\"", indent.as_str()]);
            }
            None => {
                self.r.control("PP", []);
            }
        }
    }

    fn heading(&mut self, level: HeadingLevel) {
        let line = std::mem::take(&mut self.line);
        let mac = match level {
            HeadingLevel::H1 => "SH",
            HeadingLevel::H2 => "SS",
            _ => {
                self.para_break();
                self.r.text(line.inlines(Some(Font::Bold)));
                return;
            }
        };
        // A section ends every list.
        while self.lists.pop().is_some() {
            if !self.lists.is_empty() {
                self.r.control("RE", []);
            }
        }
        match line.simple() {
            Some(s) => {
                self.r.control(mac, [s]);
            }
            None => {
                // `.SH` alone takes the next line as the heading, so it can be escaped
                // and formatted like any text.
                self.r.control(mac, []);
                self.r.text(line.inlines(None));
            }
        }
        self.item_start = false;
        self.section_start = true;
    }

    fn table_end(&mut self) {
        let Some(table) = self.table.take() else {
            return;
        };
        self.item_start = false;
        self.section_start = false;
        let width = table
            .rows
            .iter()
            .filter_map(|(_, cells)| cells.first())
            .map(|c| c.plain().trim().len())
            .max()
            .unwrap_or(0)
            .clamp(2, 18)
            + 2;
        let width = width.to_string();
        for (i, (header, cells)) in table.rows.into_iter().enumerate() {
            if i == 0 {
                self.r.control("TP", [width.as_str()]);
            } else {
                if i == 1 {
                    self.r.control("PD", ["0"]);
                }
                self.r.control("TP", []);
            }
            let force = header.then_some(Font::Italic);
            let mut cells = cells.into_iter();
            let tag = cells.next().unwrap_or_default();
            if tag.is_empty() {
                self.r.text([roman("")]);
            } else {
                self.r.text(tag.inlines(force));
            }
            let mut rest = Vec::new();
            for (j, c) in cells.enumerate() {
                if j > 0 {
                    rest.push(roman("; "));
                }
                rest.extend(c.inlines(force));
            }
            self.r.text(rest);
        }
        self.r.control("PD", []);
    }

    fn event(&mut self, event: Event<'_>) {
        match event {
            Event::Start(tag) => self.start(tag),
            Event::End(tag) => self.end(tag),
            Event::Text(t) => self.text(self.font(), &t),
            Event::Code(t) => self.text(Font::Bold, &t),
            Event::InlineMath(t)
            | Event::DisplayMath(t)
            | Event::Html(t)
            | Event::InlineHtml(t)
            | Event::FootnoteReference(t) => self.text(self.font(), &t),
            Event::SoftBreak => {
                if let Some(code) = self.code.as_mut() {
                    code.push('\n');
                } else {
                    self.target().soft_break();
                }
            }
            Event::HardBreak => self.target().hard_break(),
            Event::Rule => {
                self.flush();
                self.r.control("sp", []);
            }
            Event::TaskListMarker(done) => {
                self.text(Font::Roman, if done { "[x] " } else { "[ ] " });
            }
        }
    }

    fn start(&mut self, tag: Tag<'_>) {
        match tag {
            Tag::Paragraph => {
                if self.table.is_none() {
                    self.para_break();
                }
            }
            Tag::Heading { .. } => self.flush(),
            Tag::BlockQuote(_) => {
                self.para_break();
                self.r.control("RS", ["4"]);
                // The quote's first paragraph follows directly.
                self.item_start = true;
            }
            Tag::CodeBlock(_) => {
                self.flush();
                self.code = Some(String::new());
            }
            Tag::HtmlBlock => self.para_break(),
            Tag::List(first) => {
                self.flush();
                if let Some(parent) = self.lists.last() {
                    let indent = parent.indent.to_string();
                    self.r.control("RS", [indent.as_str()]);
                }
                self.lists.push(List {
                    next: first,
                    indent: if first.is_some() { 4 } else { 2 },
                });
                self.item_start = false;
                self.section_start = false;
            }
            Tag::Item => {
                self.flush();
                if let Some(l) = self.lists.last_mut() {
                    let tag = match l.next {
                        Some(n) => {
                            l.next = Some(n + 1);
                            format!("{n}.")
                        }
                        None => "\\(bu".to_string(),
                    };
                    let indent = l.indent.to_string();
                    self.r.control("IP", [tag.as_str(), indent.as_str()]);
                }
                self.item_start = true;
                self.section_start = false;
            }
            Tag::Table(_) => {
                self.flush();
                self.table = Some(Table::default());
            }
            Tag::TableHead => {
                if let Some(t) = self.table.as_mut() {
                    t.rows.push((true, Vec::new()));
                }
            }
            Tag::TableRow => {
                if let Some(t) = self.table.as_mut() {
                    t.rows.push((false, Vec::new()));
                }
            }
            Tag::TableCell => {
                if let Some((_, cells)) = self.table.as_mut().and_then(|t| t.rows.last_mut()) {
                    cells.push(Line::default());
                }
            }
            Tag::Emphasis => self.italic += 1,
            Tag::Strong => self.bold += 1,
            Tag::Link { dest_url, .. } | Tag::Image { dest_url, .. } => {
                self.links.push((dest_url.to_string(), String::new()));
            }
            Tag::FootnoteDefinition(_)
            | Tag::DefinitionList
            | Tag::DefinitionListTitle
            | Tag::DefinitionListDefinition
            | Tag::MetadataBlock(_) => self.para_break(),
            Tag::Strikethrough | Tag::Superscript | Tag::Subscript => {}
        }
    }

    fn end(&mut self, tag: TagEnd) {
        match tag {
            TagEnd::Paragraph => {
                if self.table.is_none() {
                    self.flush();
                }
            }
            TagEnd::Heading(level) => self.heading(level),
            TagEnd::BlockQuote(_) => {
                self.flush();
                self.item_start = false;
                self.r.control("RE", []);
            }
            TagEnd::CodeBlock => {
                let code = self.code.take().unwrap_or_default();
                let indent = self.lists.last().map_or(0, |l| l.indent);
                self.item_start = false;
                self.section_start = false;
                code_block(self.r, indent, &code);
            }
            TagEnd::List(_) => {
                self.flush();
                self.lists.pop();
                if !self.lists.is_empty() {
                    self.r.control("RE", []);
                }
                self.item_start = false;
            }
            TagEnd::Item => {
                self.flush();
                self.item_start = false;
            }
            TagEnd::Table => self.table_end(),
            TagEnd::TableHead | TagEnd::TableRow | TagEnd::TableCell => {}
            TagEnd::Emphasis => self.italic = self.italic.saturating_sub(1),
            TagEnd::Strong => self.bold = self.bold.saturating_sub(1),
            TagEnd::Link | TagEnd::Image => {
                if let Some((dest, text)) = self.links.pop()
                    && !dest.is_empty()
                    && !dest.starts_with('#')
                    && dest != text
                    && dest.strip_prefix("mailto:") != Some(text.as_str())
                {
                    let font = self.font();
                    self.target().push(font, &format!(" <{dest}>"));
                }
            }
            TagEnd::HtmlBlock
            | TagEnd::FootnoteDefinition
            | TagEnd::DefinitionList
            | TagEnd::DefinitionListTitle
            | TagEnd::DefinitionListDefinition
            | TagEnd::MetadataBlock(_) => self.flush(),
            TagEnd::Strikethrough | TagEnd::Superscript | TagEnd::Subscript => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roff_of(md: &str) -> String {
        let mut r = Roff::new();
        markdown_to_roff(md, &mut r);
        body(&r)
    }

    #[test]
    fn headings_paragraphs_and_fonts() {
        let out = roff_of(
            "# NAME\n\nx - a `code` and *em*\n\n## loglevel *N*\n\nOne\n.two\n\n## PLAIN\n\nThree",
        );
        assert_eq!(
            out,
            ".SH NAME\nx \\- a \\fBcode\\fR and \\fIem\\fR\n.SS\nloglevel \\fIN\\fR\n\
             One\n\\&.two\n.SS PLAIN\nThree\n"
        );
    }

    #[test]
    fn nothing_becomes_a_request() {
        let out = roff_of("a\n.so /etc/passwd\n\n'br\n\n\\fB x");
        assert!(!out.lines().any(|l| l.starts_with(".so")), "{out}");
        assert!(!out.lines().any(|l| l.starts_with('\'')), "{out}");
        assert!(out.contains("\\\\fB x"), "{out}");
    }

    #[test]
    fn lists_nest_and_code_blocks_keep_lines() {
        let out = roff_of("- a\n  - b\n- c\n\n```text\n .x\n\n  y\n```\n");
        assert_eq!(
            out,
            ".IP \\(bu 2\na\n.RS 2\n.IP \\(bu 2\nb\n.RE\n.IP \\(bu 2\nc\n\
             .sp\n.RS 4\n.nf\n .x\n\n  y\n.fi\n.RE\n"
        );
    }

    #[test]
    fn tables_become_tagged_paragraphs() {
        let out = roff_of("| exit | reply |\n|---|---|\n| 31 | `554 x` |\n| 51 | y |\n");
        assert_eq!(
            out,
            ".TP 6\n\\fIexit\\fR\n\\fIreply\\fR\n.PD 0\n.TP\n31\n\\fB554 x\\fR\n.TP\n51\ny\n.PD\n"
        );
    }

    #[test]
    fn module_doc_and_page_names() {
        assert_eq!(
            module_doc("//! # A\n//!\n//!   x\nuse y;\n//! z"),
            "# A\n\n  x\n"
        );
        assert_eq!(page_name("queue/maildir"), "qpsmtpd-queue-maildir");
        assert_eq!(page_name("rcpt_ok"), "qpsmtpd-rcpt_ok");
        assert_eq!(finish("a\u{2014}b".into()), "a\\[u2014]b");
    }
}
