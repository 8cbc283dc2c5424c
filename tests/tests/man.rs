//! The pages in `man/` are the ones the source generates (see `qpsmtpd_tests::man`).
//!
//! When they differ the test fails with the list of stale pages; run
//! `QPSMTPD_WRITE_MAN=1 cargo test -p qpsmtpd-tests --test man` to rewrite them (that also
//! removes the pages of plugins that no longer exist).

use qpsmtpd_core::core_config::CORE_FILES;
use qpsmtpd_tests::man::{self, Page};
use qpsmtpd_tests::workspace;
use std::path::{Path, PathBuf};
use std::process::Command;

const WRITE_VAR: &str = "QPSMTPD_WRITE_MAN";
const REGENERATE: &str = "QPSMTPD_WRITE_MAN=1 cargo test -p qpsmtpd-tests --test man";

fn man_dir() -> PathBuf {
    workspace().join("man")
}

fn generated() -> Vec<Page> {
    man::pages(&workspace()).unwrap_or_else(|e| panic!("cannot generate the manual pages:\n{e}"))
}

/// `qpsmtpd*.7` / `qpsmtpd*.8` files in `man/` that no generated page accounts for.
fn leftovers(dir: &Path, pages: &[Page]) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<String> = rd
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.starts_with("qpsmtpd") && (n.ends_with(".7") || n.ends_with(".8")))
        .filter(|n| !pages.iter().any(|p| &p.file == n))
        .collect();
    out.sort();
    out
}

#[test]
fn pages_are_current() {
    let pages = generated();
    let dir = man_dir();
    let stale: Vec<&Page> = pages
        .iter()
        .filter(|p| std::fs::read_to_string(dir.join(&p.file)).ok().as_deref() != Some(&p.text))
        .collect();
    let gone = leftovers(&dir, &pages);

    if std::env::var_os(WRITE_VAR).is_some_and(|v| !v.is_empty() && v != "0") {
        std::fs::create_dir_all(&dir).expect("create man/");
        for p in &stale {
            std::fs::write(dir.join(&p.file), &p.text)
                .unwrap_or_else(|e| panic!("write man/{}: {e}", p.file));
            eprintln!("wrote man/{}", p.file);
        }
        for f in &gone {
            std::fs::remove_file(dir.join(f)).unwrap_or_else(|e| panic!("remove man/{f}: {e}"));
            eprintln!("removed man/{f}");
        }
        return;
    }

    let mut problems: Vec<String> = stale
        .iter()
        .map(|p| {
            if dir.join(&p.file).exists() {
                format!("  man/{} is out of date", p.file)
            } else {
                format!("  man/{} is missing", p.file)
            }
        })
        .collect();
    problems.extend(
        gone.iter()
            .map(|f| format!("  man/{f} belongs to no plugin of the catalogue")),
    );
    assert!(
        problems.is_empty(),
        "the manual pages in man/ do not match the source:\n{}\n\
         Regenerate them with:\n  {REGENERATE}\nand commit the result.",
        problems.join("\n")
    );
}

#[test]
fn qpsmtpd_8_documents_options_files_environment_and_signals() {
    let pages = generated();
    let page = &pages
        .iter()
        .find(|p| p.file == "qpsmtpd.8")
        .expect("qpsmtpd.8")
        .text;
    assert!(page.contains(".TH qpsmtpd 8 "), "{page}");
    assert!(page.contains("\\-\\-listen"), "no --listen in qpsmtpd.8");
    assert!(
        page.contains("\\-\\-config\\-dir"),
        "no --config-dir in qpsmtpd.8"
    );
    for f in CORE_FILES {
        let name = format!("\\fB{}\\fR", f.name.replace('-', "\\-"));
        assert!(page.contains(&name), "qpsmtpd.8 does not list {}", f.name);
    }
    for section in [
        ".SH FILES",
        ".SH ENVIRONMENT",
        ".SH SIGNALS",
        ".SH \"SEE ALSO\"",
    ] {
        assert!(page.contains(section), "qpsmtpd.8 has no {section}");
    }
    for var in [
        "QPSMTPD_CONFIG",
        "QMAIL",
        "TCPREMOTEIP",
        "TCPREMOTEHOST",
        "TCPREMOTEINFO",
        "TCPREMOTEPORT",
        "TCPLOCALIP",
        "TCPLOCALHOST",
        "TCPLOCALPORT",
        "REMOTE_HOST",
        "RELAYCLIENT",
        "SIGHUP",
        "SIGTERM",
        "SIGINT",
    ] {
        assert!(
            page.contains(&format!("\\fB{var}\\fR")),
            "qpsmtpd.8 does not mention {var}"
        );
    }
    assert!(page.contains("qpsmtpd\\-plugins(7)"));
}

#[test]
fn every_plugin_has_a_page_with_its_name_line() {
    let ws = workspace();
    let docs = man::plugin_docs(&ws).unwrap_or_else(|e| panic!("{e}"));
    let pages = generated();
    let overview = &pages
        .iter()
        .find(|p| p.file == "qpsmtpd-plugins.7")
        .expect("qpsmtpd-plugins.7")
        .text;
    assert_eq!(docs.len(), qpsmtpd_plugins::CATALOGUE.len());
    for doc in &docs {
        let file = format!("{}.7", doc.page());
        let page = &pages
            .iter()
            .find(|p| p.file == file)
            .unwrap_or_else(|| panic!("no page for {}", doc.name))
            .text;
        assert!(
            page.starts_with(&format!(
                ".ie \\n(.g .ds Aq \\(aq\n.el .ds Aq '\n.TH {} 7 ",
                doc.page()
            )),
            "{file}: title line"
        );
        // The NAME line as the plugin wrote it (roff spells - as \- and ' as \*(Aq).
        let escaped = doc.name_line.replace('-', "\\-").replace('\'', "\\*(Aq");
        assert!(
            page.contains(&format!(".SH NAME\n{escaped}\n")),
            "{file} does not carry the NAME line {:?}",
            doc.name_line
        );
        for s in man::REQUIRED_SECTIONS {
            assert!(page.contains(&format!(".SH {s}\n")), "{file}: no {s}");
        }
        assert!(
            overview.contains(&format!("\\fB{}\\fR", doc.name.replace('-', "\\-"))),
            "qpsmtpd-plugins.7 does not list {}",
            doc.name
        );
        assert!(
            overview.contains(&format!("\\fB{}\\fR(7)", doc.page().replace('-', "\\-"))),
            "qpsmtpd-plugins.7 does not point to {file}"
        );
    }
}

#[test]
fn a_plugin_without_its_sections_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("plugins/src");
    std::fs::create_dir_all(src.join("queue")).expect("mkdir");
    std::fs::write(
        src.join("relay.rs"),
        "//! # NAME\n//!\n//! relay - x\n//!\n//! # DESCRIPTION\n//!\n//! y\nuse z;\n",
    )
    .expect("write");
    let err = man::plugin_doc(dir.path(), "relay").unwrap_err();
    assert!(err.contains("no CONFIGURATION section"), "{err}");
    let err = man::plugin_doc(dir.path(), "queue/maildir").unwrap_err();
    assert!(err.contains("no source file"), "{err}");
    assert!(man::pages(dir.path()).is_err());
}

/// groff reads every page without a warning.
#[test]
fn pages_render_with_groff() {
    let groff = qpsmtpd_tests::require("groff");
    let dir = tempfile::tempdir().expect("tempdir");
    for page in generated() {
        let path = dir.path().join(&page.file);
        std::fs::write(&path, &page.text).expect("write page");
        let out = Command::new(&groff)
            .args(["-man", "-Tutf8", "-ww", "-rLL=80n", "-P-cbou"])
            .arg(&path)
            .env("LC_ALL", "C.UTF-8")
            .output()
            .expect("run groff");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stderr.trim().is_empty(),
            "groff on {}: {}\n{stderr}",
            page.file,
            out.status
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("NAME"), "{}: nothing rendered", page.file);
    }
}
