//! qmail-style control files: where they are found and how they are read.
//!
//! Each file is looked up on its own, in this order (the first directory that has it wins):
//! `--config-dir DIR`, `$QPSMTPD_CONFIG`, `/etc/qpsmtpd`, `$QMAIL/control` (default
//! `/var/qmail/control`). So a site can keep qmail's `me` and `rcpthosts` where they are and
//! put only qpsmtpd's own files in its config directory.
//!
//! Syntax: one value per line; leading and trailing blanks are trimmed; empty lines and lines
//! whose first non-blank character is `#` are skipped; `$include PATH` is replaced by the
//! lines of that file, or of every regular file (not starting with `.`) in that directory in
//! name order. A relative `$include` path is taken relative to the including file. `NAME.cdb`
//! files are constant databases (`morercpthosts.cdb`, `morerelayclients.cdb`).
//!
//! Every line remembers its file and line number, so a plugin that finds a bad value reports
//! `path:line: message`.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

/// Where a configuration line came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    pub file: Arc<Path>,
    /// 1-based; 0 when the error concerns the whole file.
    pub line: usize,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.file.display())
        } else {
            write!(f, "{}:{}", self.file.display(), self.line)
        }
    }
}

/// One meaningful line of a control file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigLine {
    pub text: String,
    pub origin: Origin,
}

impl ConfigLine {
    /// An error located at this line.
    pub fn error(&self, message: impl fmt::Display) -> ConfigError {
        ConfigError::at(self.origin.clone(), message)
    }

    /// Parses the line with `FromStr`, or reports `path:line: invalid value`.
    pub fn parse<T: FromStr>(&self) -> Result<T, ConfigError> {
        self.text
            .parse()
            .map_err(|_| self.error(format!("invalid value {:?}", self.text)))
    }
}

/// A broken configuration, with the place to fix it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub origin: Option<Origin>,
    pub message: String,
}

impl ConfigError {
    pub fn at(origin: Origin, message: impl fmt::Display) -> ConfigError {
        ConfigError {
            origin: Some(origin),
            message: message.to_string(),
        }
    }

    pub fn new(message: impl fmt::Display) -> ConfigError {
        ConfigError {
            origin: None,
            message: message.to_string(),
        }
    }

    fn io(path: &Path, err: &io::Error) -> ConfigError {
        ConfigError::at(
            Origin {
                file: path.into(),
                line: 0,
            },
            format!("cannot read: {err}"),
        )
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.origin {
            Some(o) => write!(f, "{o}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

/// The directories searched for control files, most specific first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigDirs(Vec<PathBuf>);

impl ConfigDirs {
    /// The standard search order. `env` reads an environment variable (the caller passes
    /// the process environment, or a fixed map in tests).
    pub fn standard(config_dir: Option<&Path>, env: impl Fn(&str) -> Option<String>) -> ConfigDirs {
        let mut dirs = Vec::new();
        if let Some(d) = config_dir {
            dirs.push(d.to_path_buf());
        }
        if let Some(d) = env("QPSMTPD_CONFIG").filter(|d| !d.is_empty()) {
            dirs.push(PathBuf::from(d));
        }
        dirs.push(PathBuf::from("/etc/qpsmtpd"));
        let qmail = env("QMAIL")
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| "/var/qmail".into());
        dirs.push(Path::new(&qmail).join("control"));
        ConfigDirs(dirs)
    }

    /// Exactly these directories, in this order.
    pub fn only(dirs: Vec<PathBuf>) -> ConfigDirs {
        ConfigDirs(dirs)
    }

    pub fn dirs(&self) -> &[PathBuf] {
        &self.0
    }

    /// The first existing `DIR/name`.
    pub fn locate(&self, name: &str) -> Option<PathBuf> {
        self.0
            .iter()
            .map(|d| d.join(name))
            .find(|p| p.symlink_metadata().is_ok())
    }
}

/// Read access to the control files. Cheap to share: it holds only the search path.
#[derive(Clone, Debug)]
pub struct Config {
    dirs: ConfigDirs,
}

/// Deepest `$include` nesting before we call it a loop.
const MAX_INCLUDE_DEPTH: usize = 16;

impl Config {
    pub fn new(dirs: ConfigDirs) -> Config {
        Config { dirs }
    }

    pub fn dirs(&self) -> &ConfigDirs {
        &self.dirs
    }

    /// The path a control file would be read from, if it exists.
    pub fn locate(&self, name: &str) -> Option<PathBuf> {
        self.dirs.locate(name)
    }

    /// All meaningful lines of a control file. A missing file is empty, not an error; an
    /// unreadable one (permissions, a directory, a bad `$include`) is.
    pub fn lines(&self, name: &str) -> Result<Vec<ConfigLine>, ConfigError> {
        let Some(path) = self.locate(name) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        read_file(&path, &mut Vec::new(), &mut out)?;
        Ok(out)
    }

    /// The first meaningful line, if any.
    pub fn first(&self, name: &str) -> Result<Option<ConfigLine>, ConfigError> {
        Ok(self.lines(name)?.into_iter().next())
    }

    /// The first line parsed as `T`, or `default` when the file is missing or empty.
    pub fn value<T: FromStr>(&self, name: &str, default: T) -> Result<T, ConfigError> {
        match self.first(name)? {
            Some(line) => line.parse(),
            None => Ok(default),
        }
    }

    /// The constant database `NAME.cdb`, if it exists.
    pub fn map(&self, name: &str) -> Result<Option<CdbMap>, ConfigError> {
        let file = format!("{name}.cdb");
        let Some(path) = self.locate(&file) else {
            return Ok(None);
        };
        cdb::CDB::open(&path)
            .map(|db| {
                Some(CdbMap {
                    db,
                    path: path.clone(),
                })
            })
            .map_err(|e| ConfigError::io(&path, &e))
    }
}

/// Reads `path` into `out`, expanding `$include`. `stack` holds the files being read, to
/// detect include loops.
fn read_file(
    path: &Path,
    stack: &mut Vec<PathBuf>,
    out: &mut Vec<ConfigLine>,
) -> Result<(), ConfigError> {
    let canonical = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    if stack.contains(&canonical) || stack.len() >= MAX_INCLUDE_DEPTH {
        return Err(ConfigError::at(
            Origin {
                file: path.into(),
                line: 0,
            },
            "$include loop",
        ));
    }
    let text = std::fs::read(path).map_err(|e| ConfigError::io(path, &e))?;
    let text = String::from_utf8_lossy(&text);
    let file: Arc<Path> = path.into();
    stack.push(canonical);
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let origin = Origin {
            file: file.clone(),
            line: n + 1,
        };
        if let Some(target) = line.strip_prefix("$include") {
            let target = target.trim();
            if target.is_empty() || !line[8..].starts_with(char::is_whitespace) {
                return Err(ConfigError::at(origin, "$include needs a path"));
            }
            let target = match path.parent() {
                Some(dir) if Path::new(target).is_relative() => dir.join(target),
                _ => PathBuf::from(target),
            };
            include(&target, &origin, stack, out)?;
            continue;
        }
        out.push(ConfigLine {
            text: line.to_string(),
            origin,
        });
    }
    stack.pop();
    Ok(())
}

/// `$include` of a file or a directory.
fn include(
    target: &Path,
    origin: &Origin,
    stack: &mut Vec<PathBuf>,
    out: &mut Vec<ConfigLine>,
) -> Result<(), ConfigError> {
    let meta = std::fs::metadata(target).map_err(|e| {
        ConfigError::at(
            origin.clone(),
            format!("$include {}: {e}", target.display()),
        )
    })?;
    if !meta.is_dir() {
        return read_file(target, stack, out);
    }
    let entries = std::fs::read_dir(target).map_err(|e| {
        ConfigError::at(
            origin.clone(),
            format!("$include {}: {e}", target.display()),
        )
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    for f in files {
        read_file(&f, stack, out)?;
    }
    Ok(())
}

/// A constant database of keys (and values), e.g. `morercpthosts.cdb`.
pub struct CdbMap {
    db: cdb::CDB,
    path: PathBuf,
}

impl fmt::Debug for CdbMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CdbMap({})", self.path.display())
    }
}

impl CdbMap {
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn contains(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// The value stored for `key`; a read error counts as absent.
    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.db.get(key.as_bytes()).and_then(Result::ok)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn dirs_with(files: &[(&str, &str)]) -> (tempfile::TempDir, Config) {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            let p = dir.path().join(name);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, text).unwrap();
        }
        let config = Config::new(ConfigDirs::only(vec![dir.path().to_path_buf()]));
        (dir, config)
    }

    fn texts(lines: &[ConfigLine]) -> Vec<&str> {
        lines.iter().map(|l| l.text.as_str()).collect()
    }

    #[test]
    fn comments_blank_lines_and_trimming() {
        let (_d, c) = dirs_with(&[(
            "rcpthosts",
            "# domains\n\n  example.com  \n\t# x\nexample.net\n",
        )]);
        let lines = c.lines("rcpthosts").unwrap();
        assert_eq!(texts(&lines), ["example.com", "example.net"]);
        assert_eq!(lines[1].origin.line, 5);
        assert!(c.lines("missing").unwrap().is_empty());
    }

    #[test]
    fn includes_files_and_directories() {
        let (d, c) = dirs_with(&[
            (
                "rcpthosts",
                "a.example\n$include more\n$include rcpthosts.d\nz.example\n",
            ),
            ("more", "b.example\n"),
            ("rcpthosts.d/2", "d.example\n"),
            ("rcpthosts.d/1", "c.example\n"),
            ("rcpthosts.d/.hidden", "nope.example\n"),
        ]);
        let lines = c.lines("rcpthosts").unwrap();
        assert_eq!(
            texts(&lines),
            [
                "a.example",
                "b.example",
                "c.example",
                "d.example",
                "z.example"
            ]
        );
        assert_eq!(lines[1].origin.file.as_ref(), d.path().join("more"));
    }

    #[test]
    fn include_errors_name_the_line() {
        let (_d, c) = dirs_with(&[
            ("a", "x\n$include b\n"),
            ("b", "$include a\n"),
            ("c", "\n$include nothere\n"),
        ]);
        let err = c.lines("a").unwrap_err();
        assert!(err.to_string().contains("$include loop"), "{err}");
        let err = c.lines("c").unwrap_err();
        assert!(err.to_string().contains("/c:2: $include"), "{err}");
    }

    #[test]
    fn first_directory_with_the_file_wins() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        fs::write(a.path().join("me"), "first.example\n").unwrap();
        fs::write(b.path().join("me"), "second.example\n").unwrap();
        fs::write(b.path().join("databytes"), "1000\n").unwrap();
        let c = Config::new(ConfigDirs::only(vec![a.path().into(), b.path().into()]));
        assert_eq!(c.first("me").unwrap().unwrap().text, "first.example");
        assert_eq!(c.value("databytes", 0u64).unwrap(), 1000);
        assert_eq!(c.value("timeout", 1200u64).unwrap(), 1200);
    }

    #[test]
    fn bad_values_name_file_and_line() {
        let (_d, c) = dirs_with(&[("databytes", "# max\nlots\n")]);
        let err = c.value("databytes", 0u64).unwrap_err();
        assert!(
            err.to_string()
                .ends_with("databytes:2: invalid value \"lots\""),
            "{err}"
        );
    }

    #[test]
    fn standard_order() {
        let env = |k: &str| match k {
            "QPSMTPD_CONFIG" => Some("/env/config".to_string()),
            "QMAIL" => Some("/opt/qmail".to_string()),
            _ => None,
        };
        let dirs = ConfigDirs::standard(Some(Path::new("/cli")), env);
        let want: Vec<PathBuf> = ["/cli", "/env/config", "/etc/qpsmtpd", "/opt/qmail/control"]
            .iter()
            .map(PathBuf::from)
            .collect();
        assert_eq!(dirs.dirs(), want.as_slice());
        let dirs = ConfigDirs::standard(None, |_| None);
        assert_eq!(dirs.dirs().last().unwrap(), Path::new("/var/qmail/control"));
    }

    #[test]
    fn cdb_maps() {
        let (d, c) = dirs_with(&[]);
        let mut w = cdb::CDBWriter::create(
            d.path()
                .join("morercpthosts.cdb")
                .to_string_lossy()
                .to_string(),
        )
        .unwrap();
        w.add(b"example.org", b"").unwrap();
        w.finish().unwrap();
        let m = c.map("morercpthosts").unwrap().unwrap();
        assert!(m.contains("example.org"));
        assert!(!m.contains("example.com"));
        assert!(c.map("morerelayclients").unwrap().is_none());
    }
}
