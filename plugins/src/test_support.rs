//! Helpers shared by the plugins' unit tests.

use qpsmtpd_core::testing::{DnsServer, Harness, LogCapture, SilentDns, TestServer};

/// A server whose `config/plugins` is `plugins` (any plugin of the catalogue), with every
/// log record captured.
pub(crate) fn start(plugins: &str) -> (TestServer, LogCapture) {
    let log = LogCapture::default();
    let server = Harness::new()
        .catalogue(crate::CATALOGUE)
        .file("plugins", plugins)
        .plugin("capture", log.clone())
        .build()
        .unwrap();
    (server, log)
}

/// Like [`start`], with the resolver pointed at `dns`, `rcpthosts` = `example.com`, and
/// the control files `files` (name, contents).
pub(crate) fn start_with_dns(
    dns: &DnsServer,
    plugins: &str,
    files: &[(&str, &str)],
) -> (TestServer, LogCapture) {
    let log = LogCapture::default();
    let server = files
        .iter()
        .fold(Harness::new().dns(dns), |h, (name, text)| {
            h.file(name, text)
        })
        .catalogue(crate::CATALOGUE)
        .file("rcpthosts", "example.com")
        .file("plugins", plugins)
        .plugin("capture", log.clone())
        .build()
        .unwrap();
    (server, log)
}

/// Like [`start`], with the resolver pointed at `dead`, a nameserver that never answers,
/// and `dns_timeout` = `timeout`.
pub(crate) fn start_silent(
    dead: &SilentDns,
    timeout: &str,
    plugins: &str,
) -> (TestServer, LogCapture) {
    let log = LogCapture::default();
    let server = Harness::new()
        .silent_dns(dead, timeout)
        .catalogue(crate::CATALOGUE)
        .file("plugins", plugins)
        .plugin("capture", log.clone())
        .build()
        .unwrap();
    (server, log)
}

/// What `plugin` logged at INFO or above (its summary lines), as `LEVEL message`.
pub(crate) fn summary(log: &LogCapture, plugin: &str) -> Vec<String> {
    log.of_plugin(plugin)
        .into_iter()
        .filter(|l| !l.starts_with("DEBUG "))
        .collect()
}

/// The error that `config/plugins` = `plugins` gives at load time (it must not load).
pub(crate) fn load_error(plugins: &str) -> String {
    match Harness::new()
        .catalogue(crate::CATALOGUE)
        .file("plugins", plugins)
        .build()
    {
        Ok(_) => panic!("{plugins:?} should not load"),
        Err(e) => e.to_string(),
    }
}
