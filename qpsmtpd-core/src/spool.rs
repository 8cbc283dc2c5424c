//! The message body store: memory up to `size_threshold` bytes, then a 0600 file in
//! `spool_dir`. The file is deleted when the spool is dropped, which happens when the
//! transaction ends, whether normally, on disconnect, on timeout or while unwinding from a
//! plugin panic.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Cursor, Read, Write};
use std::path::{Path, PathBuf};
use tempfile::NamedTempFile;

/// Write buffer for the spool file; large enough that a 100 MB message costs few syscalls.
const WRITE_BUFFER: usize = 128 * 1024;

struct SpoolFile {
    temp: NamedTempFile,
    writer: BufWriter<File>,
}

/// Message body storage.
pub struct Spool {
    memory: Vec<u8>,
    file: Option<SpoolFile>,
    threshold: usize,
    dir: PathBuf,
    len: u64,
}

impl std::fmt::Debug for Spool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spool")
            .field("len", &self.len)
            .field(
                "file",
                &self.file.as_ref().map(|s| s.temp.path().to_path_buf()),
            )
            .finish()
    }
}

impl Spool {
    /// An empty spool that keeps up to `threshold` bytes in memory.
    pub fn new(dir: &Path, threshold: usize) -> Spool {
        Spool {
            memory: Vec::new(),
            file: None,
            threshold,
            dir: dir.to_path_buf(),
            len: 0,
        }
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends bytes, moving to a file once the threshold is passed.
    pub fn write(&mut self, data: &[u8]) -> io::Result<()> {
        if self.file.is_none() && self.memory.len() + data.len() > self.threshold {
            self.move_to_file()?;
        }
        match &mut self.file {
            Some(f) => f.writer.write_all(data)?,
            None => self.memory.extend_from_slice(data),
        }
        self.len += data.len() as u64;
        Ok(())
    }

    /// Moves the body to a file now (scanners that need a path call this).
    fn move_to_file(&mut self) -> io::Result<()> {
        if self.file.is_some() {
            return Ok(());
        }
        let temp = tempfile::Builder::new()
            .prefix("qpsmtpd-")
            .tempfile_in(&self.dir)?;
        let mut writer = BufWriter::with_capacity(WRITE_BUFFER, temp.as_file().try_clone()?);
        writer.write_all(&self.memory)?;
        self.memory = Vec::new();
        self.file = Some(SpoolFile { temp, writer });
        Ok(())
    }

    /// Flushes buffered writes.
    pub fn flush(&mut self) -> io::Result<()> {
        match &mut self.file {
            Some(f) => f.writer.flush(),
            None => Ok(()),
        }
    }

    /// The path of the spool file, spooling to disk first if the body is still in memory.
    pub fn path(&mut self) -> io::Result<&Path> {
        self.move_to_file()?;
        self.flush()?;
        Ok(self
            .file
            .as_ref()
            .map(|f| f.temp.path())
            .unwrap_or(Path::new("")))
    }

    /// The path of the spool file, if the body is on disk.
    pub fn file_path(&self) -> Option<&Path> {
        self.file.as_ref().map(|f| f.temp.path())
    }

    /// A reader over the whole body, from the start. Each call gets its own position.
    pub fn reader(&mut self) -> io::Result<Box<dyn Read + Send + '_>> {
        self.flush()?;
        match &self.file {
            Some(f) => Ok(Box::new(BufReader::with_capacity(
                WRITE_BUFFER,
                f.temp.reopen()?,
            ))),
            None => Ok(Box::new(Cursor::new(&self.memory[..]))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn memory_then_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::new(dir.path(), 10);
        s.write(b"hello").unwrap();
        assert!(s.file_path().is_none());
        s.write(b" world, this is long").unwrap();
        let path = s.file_path().unwrap().to_path_buf();
        assert!(path.starts_with(dir.path()));
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let mut body = String::new();
        s.reader().unwrap().read_to_string(&mut body).unwrap();
        assert_eq!(body, "hello world, this is long");
        assert_eq!(s.len(), 25);
        drop(s);
        assert!(!path.exists(), "spool file removed on drop");
    }

    #[test]
    fn forced_path() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::new(dir.path(), 1 << 20);
        s.write(b"abc").unwrap();
        let p = s.path().unwrap().to_path_buf();
        assert_eq!(std::fs::read(&p).unwrap(), b"abc");
    }
}
